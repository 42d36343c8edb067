"""report.json -> report.md: a headline per device, then one table per device."""

from __future__ import annotations

from typing import Any

_SHORT = {
    "stsb/zeroshot": "STS-B zero-shot",
    "stsb/finetune": "STS-B fine-tuned",
    "sst2/probe": "SST-2 probe",
    "sst2/finetune": "SST-2 fine-tuned",
    "agreement/zeroshot": "agreement",
    "stsb/predict": "STS-B model",
    "sst2/predict": "SST-2 model",
}


def render(report: dict[str, Any]) -> str:
    lines = ["# studentpack report", ""]
    lines += [
        f"Generated {report['created']} from {', '.join(report['roots'])}. "
        "Accuracy is measured through the served endpoint (`studentpack eval URL`) unless a cell says "
        "*(local)*. The baseline is the teacher's PyTorch directory served by the same server. "
        f"Headline accuracy: mean % of the teacher over {_metric_names(report['headline_metrics'])}. "
        "Latency: served p50/p95/p99 in ms at concurrency 1; throughput: best texts/s over the concurrency "
        "levels tried. ★ marks the accuracy/latency frontier.",
        "",
    ]
    metrics = _metric_columns(report)
    for device in report["devices"]:
        rows = [r for r in report["rows"] if r["device"] == device]
        lines += [f"## {device}", ""]
        headline = report["headline"].get(device)
        if headline:
            lines += [_headline_text(headline), ""]
        lines += _table(rows, metrics)
        lines.append("")
    lines += _side_by_side(report.get("side_by_side") or [])
    if report["machines"]:
        lines += ["## Machines", ""]
        for facts in report["machines"]:
            gpus = ", ".join(facts.get("gpus") or []) or "no GPU"
            flags = " ".join(facts.get("cpu_flags") or [])
            lines.append(f"- {facts.get('cpu_model')} ({facts.get('cpu_count')} cores; {flags}); {gpus}")
        lines.append("")
    if report["notes"] or report["skipped"]:
        lines += ["## Notes", ""]
        lines += [f"- {note}" for note in report["notes"]]
        lines += [f"- skipped: {item}" for item in report["skipped"]]
        lines.append("")
    lines.append("![accuracy against served p50 latency](pareto.png)")
    return "\n".join(lines) + "\n"


def _metric_names(keys: list[str]) -> str:
    return " and ".join(_SHORT.get(k, k) for k in keys) or "(no metric shared with the teacher)"


def _metric_columns(report: dict[str, Any]) -> list[str]:
    present = {k for r in report["rows"] for k in r["metrics"]}
    ordered = [k for k in _SHORT if k in present]
    return ordered + sorted(present - set(ordered))


def _headline_text(h: dict[str, Any]) -> str:
    if h.get("baseline_p50_ms") is None:
        return (
            f"Best student: **{h['row']}** at {h['score_pct_of_teacher']:.1f}% of the teacher (no baseline measured)."
        )
    verdict = (
        ""
        if h["meets_accuracy_target"]
        else f" (no student keeps {h['accuracy_target_pct']:.0f}%: the most accurate is shown)"
    )
    speed = f"**{h['speedup_p50']:.2f}x** faster" if h.get("speedup_p50") else "speed-up not comparable"
    return (
        f"Best student{verdict}: **{h['row']}** keeps **{h['score_pct_of_teacher']:.1f}%** of the teacher and is "
        f"{speed} than the baseline ({h['p50_ms']:.2f} ms against {h['baseline_p50_ms']:.2f} ms served p50 "
        f"at concurrency 1; throughput x{h['speedup_throughput'] or 0:.2f})."
    )


def _table(rows: list[dict[str, Any]], metrics: list[str]) -> list[str]:
    head = ["", "model", "variant", "params", "size", "method"]
    for key in metrics:
        head += [_SHORT.get(key, key), "%"]
    head += ["score %", "p50", "p95", "p99", "best texts/s (users)", "speed-up p50", "speed-up thr."]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        mark = "★" if r["frontier"] else ""
        if r["baseline"]:
            mark += " baseline"
        server = r.get("server") or "studentpack"
        variant = r["variant"] + ("" if server == "studentpack" else f" on {server}")
        cells = [mark, r["run"], variant, _millions(r["params"]), _mb(r["size_bytes"]), r["method"]]
        for key in metrics:
            entry = r["metrics"].get(key)
            if entry is None or entry.get("value") is None:
                cells += ["", ""]
                continue
            value = f"{entry['value']:.2f}" + ("" if entry["served"] else " *(local)*")
            pct = entry.get("pct_of_teacher")
            cells += [value, "" if pct is None else f"{pct:.1f}"]
        lat = r["latency_ms"] or {}
        users = "" if r["latency_users"] in (None, 1) else f" (c={r['latency_users']})"
        best = r["best_throughput"]
        cells += [
            "" if r["score_pct_of_teacher"] is None else f"{r['score_pct_of_teacher']:.1f}",
            f"{lat['p50']:.2f}{users}" if lat else "",
            f"{lat['p95']:.2f}" if lat else "",
            f"{lat['p99']:.2f}" if lat else "",
            f"{best['texts_per_s']:.0f} ({best['users']})" if best else "",
            _times(r["speedup_p50"]),
            _times(r["speedup_throughput"]),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _side_by_side(entries: list[dict[str, Any]]) -> list[str]:
    """One table per variant served by several servers: every concurrency level, every server."""
    lines: list[str] = []
    for entry in entries:
        lines += [f"## {entry['model']} on {entry['device']}: server by server", ""]
        ratios = {(server, r["users"]): r for server, rs in entry["ratios"].items() for r in rs}
        head = ["users", "server", "p50", "p95", "p99", "texts/s", "studentpack thr. x", "studentpack p50 x"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        users = sorted({lv["users"] for levels in entry["servers"].values() for lv in levels})
        for n in users:
            for server, levels in entry["servers"].items():
                lv = next((lv for lv in levels if lv["users"] == n), None)
                if lv is None:
                    continue
                ratio = ratios.get((server, n)) or {}
                cells = [str(n), server, f"{lv['p50']:.2f}", f"{lv['p95']:.2f}", f"{lv['p99']:.2f}"]
                cells += [f"{lv['texts_per_s']:.0f}" if lv.get("texts_per_s") else ""]
                cells += [
                    _times(ratio.get("throughput_studentpack_over_other")),
                    _times(ratio.get("p50_other_over_studentpack")),
                ]
                lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Ratios compare studentpack serve with the server on that line (above 1: studentpack ahead).", ""]
    return lines


def _millions(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.1f}M"


def _mb(n: int | None) -> str:
    return "" if not n else f"{n / 2**20:.1f} MB"


def _times(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"
