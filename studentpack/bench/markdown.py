"""report.json -> report.md: a headline per device, then one table per device."""

from __future__ import annotations

from typing import Any

from studentpack.bench.plot import PLOT_FILE

_SHORT = {
    "stsb/zeroshot": "STS-B zero-shot",
    "stsb/finetune": "STS-B fine-tuned",
    "sst2/probe": "SST-2 probe",
    "sst2/finetune": "SST-2 fine-tuned",
    "agreement/zeroshot": "teacher-neighbour recall@10",
    "stsb/predict": "STS-B model",
    "sst2/predict": "SST-2 model",
}


def render(report: dict[str, Any]) -> str:
    lines = ["# studentpack report", ""]
    lines += [
        f"Generated {report['created']} from {', '.join(report['roots'])}. "
        "Accuracy is measured through the served endpoint (`studentpack eval URL`) unless a cell says "
        "*(local)*. The baseline is the teacher's PyTorch directory served by the same server. "
        f"Score: {_score_text(report)} "
        "Latency: served p50/p95/p99 in ms at concurrency 1 (or the level shown); speed-ups, the frontier and the "
        "headline compare p50 at the baseline's level. Throughput: best texts/s over the concurrency levels "
        "tried. ★ marks the accuracy/latency frontier.",
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
    for plan in report.get("budgets") or []:
        lines += _budget(plan)
    if report["notes"] or report["skipped"]:
        lines += ["## Notes", ""]
        lines += [f"- {note}" for note in report["notes"]]
        lines += [f"- skipped: {item}" for item in report["skipped"]]
        lines.append("")
    lines.append(f"![accuracy against served p50 latency]({PLOT_FILE})")
    return "\n".join(lines) + "\n"


def _metric_names(keys: list[str]) -> str:
    return " and ".join(_SHORT.get(k, k) for k in keys) or "(no metric shared with the teacher)"


def _score_text(report: dict[str, Any]) -> str:
    score = report.get("score") or {}
    if score.get("kind") == "pct_of_teacher":
        return f"mean % of the teacher over {_metric_names(score['metrics'])}; the target is {score['target']:.0f}%."
    if score.get("kind") == "label_free":
        return (f"{score['label']}: for each held-out sentence, the share of the teacher's 10 nearest neighbours "
                f"that the student also ranks in its 10 nearest. The target, {score['target']:.1f}, is "
                f"{score['target_source']}.")  # fmt: skip
    return "none (no accuracy metric shared with the teacher)."


def headline_sentence(h: dict[str, Any], bold: bool = True) -> str:
    """One sentence: which student, how accurate (in the score's own terms), how much faster, on which CPU."""
    b = "**" if bold else ""
    if h.get("score_kind") == "pct_of_teacher":
        each = [f"{b}{pct:.1f}%{b}" + (" of the teacher" if not i else "") + f" on {_SHORT.get(m, m)}"
                for i, (m, pct) in enumerate((h.get("pct_of_teacher") or {}).items()) if pct]  # fmt: skip
        accuracy = "keeps " + (" and ".join(each) if each else f"{b}{h['score']:.1f}%{b} of the teacher")
        target = f"{h['target']:.0f}% of the teacher"
    else:
        accuracy = f"retrieves {b}{h['score']:.1f}%{b} of the teacher's 10 nearest neighbours (held-out English)"
        target = f"recall@10 {h['target']:.1f}, tied to 97% of the teacher on labelled data" if h.get("target") else ""
    verdict = "" if h["meets_accuracy_target"] else f" (none reaches {target or 'a target'}: the most accurate)"
    on = f" on {h['cpu_class']}" if h.get("cpu_class") else ""
    if h.get("baseline_p50_ms") is None or h.get("p50_ms") is None:
        return f"Best student{verdict}: {b}{h['row']}{b} {accuracy} (no baseline measured{on})."
    speed = f"{b}{h['speedup_p50']:.2f}x{b} faster" if h.get("speedup_p50") else "of no comparable speed"
    return (
        f"Best student{verdict}: {b}{h['row']}{b} {accuracy} and is {speed} than the baseline{on} "
        f"({h['p50_ms']:.2f} ms against {h['baseline_p50_ms']:.2f} ms served p50 at concurrency {h['users']}; "
        f"throughput x{h['speedup_throughput'] or 0:.2f})."
    )


def _metric_columns(report: dict[str, Any]) -> list[str]:
    present = {k for r in report["rows"] for k in r["metrics"]}
    ordered = [k for k in _SHORT if k in present]
    return ordered + sorted(present - set(ordered))


def _headline_text(h: dict[str, Any]) -> str:
    return headline_sentence(h)


def _table(rows: list[dict[str, Any]], metrics: list[str]) -> list[str]:
    head = ["", "model", "variant", "params", "size", "method"]
    for key in metrics:
        head += [_SHORT.get(key, key), "% of teacher"]
    head += ["score", "p50", "p95", "p99", "best texts/s (users)", "speed-up p50", "speed-up thr."]
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
            if key == "agreement/zeroshot" and entry.get("metric") != "recall_at_10":
                value += f" ({entry.get('metric')})"
            pct = entry.get("pct_of_teacher")
            cells += [value, "" if pct is None else f"{pct:.1f}"]
        lat = r["latency_ms"] or {}
        users = "" if r["latency_users"] in (None, 1) else f" (c={r['latency_users']})"
        best = r["best_throughput"]
        cells += [
            "" if r["score"] is None else f"{r['score']:.1f}",
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


def _budget(plan: dict[str, Any]) -> list[str]:
    """What the pipeline's time budget chose, and why (pipeline.json)."""
    lines = ["## Budget", ""]
    calibration = plan.get("calibration") or {}
    if calibration:
        lines.append(f"- this machine: {calibration.get('cpu_class')}; the teacher's forward on 16 x 128 tokens took "
                     f"{calibration.get('probe_ms')} ms, {calibration.get('factor')}x the reference machine's "
                     f"({calibration.get('reference_class')})")  # fmt: skip
    if plan.get("budget_s"):
        estimate = plan.get("estimate_s", 0) / 60
        lines.append(f"- budget {plan['budget_s'] / 60:g} min; the cost model's estimate of the run {estimate:.1f} min")
    steps = plan.get("steps") or {}
    lines.append("- distillation steps: " + ", ".join(f"{name} {n}" for name, n in steps.items()))
    lines += [f"- {reason}" for reason in plan.get("reasons") or [] if not reason.startswith("budget ")]  # shown above
    return [*lines, ""]


def _millions(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:.1f}M"


def _mb(n: int | None) -> str:
    return "" if not n else f"{n / 2**20:.1f} MB"


def _times(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"
