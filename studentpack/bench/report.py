"""`build_report(roots)`: one row per model x variant x device, accuracy next to served latency.

- Accuracy: every evaluation of the row's exact files (by content hash). A result measured through
  a served endpoint is preferred; one measured locally is used only when there is none, and marked.
  Each labelled metric is also shown as % of the teacher's own result on the same task, mode and data.
- The score: with labelled results, the mean % of the teacher over the first two labelled metrics;
  without, the label-free recall@10 of the teacher's nearest neighbours (a recall, not a % of the
  teacher), judged against the recall that BENCHMARKS.md ties to 97% of the teacher on labelled data.
- Latency and throughput: the row's load test (p50/p95/p99 at its lowest concurrency, best texts/s).
  Rows are compared (speed-ups, frontier, headline) on p50 at one concurrency level, the baseline's.
- Baseline: the teacher's PyTorch directory served by the same server (what a user deploys without
  this toolkit); speed-ups are the baseline's p50 over the row's, and the row's best throughput over
  the baseline's, on the same device.
- Frontier: rows no other row beats on both accuracy (the headline score) and p50 latency.
- Servers: a row is one model's files on one device behind one server (`studentpack serve`, or
  Triton running `studentpack export --triton`'s repository, whose config names the variant it was
  built from). Files load-tested behind more than one server also get a side-by-side entry: each
  concurrency level's p50/p95/p99 and throughput per server, and studentpack's ratios to each other.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studentpack.bench.collect import Found, Model, find, parameter_count
from studentpack.ground.isa import cpu_class
from studentpack.tasks.agreement import RECALL_AT_10_FOR_97

SCHEMA = "studentpack.report/1"
# labelled metrics that make the score, best first; the score averages the first two the teacher has
LABELLED_METRICS = ("stsb/zeroshot", "sst2/probe", "stsb/finetune", "sst2/finetune")
LABEL_FREE_METRIC = "agreement/zeroshot"  # its recall_at_10, when no labelled metric is there
LABEL_FREE_VALUE = "recall_at_10"
SAME_SPEED = 1.05  # p50s within 5% of the fastest count as equally fast in the headline
ACCURACY_TARGET = 97.0  # % of the teacher that a student must keep to count as the headline's "best"


@dataclass
class Row:
    model: Model
    device: str
    name: str
    role: str  # teacher | student
    params: int | None
    method: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # "task/mode" -> value, pct, served, ...
    latency: dict[str, Any] | None = None  # p50/p95/p99 at the lowest concurrency measured
    latency_users: int | None = None
    compared_p50: float | None = None  # p50 at the report's comparison level (None: not measured there)
    cpu_class: str | None = None
    best: dict[str, Any] | None = None  # texts_per_s, users
    loadtest: str | None = None
    score: float | None = None  # mean % of teacher over the labelled metrics, or the label-free recall@10
    floor: float | None = None  # the lowest of them: what must reach the target (97% on *every* metric)
    frontier: bool = False
    baseline: bool = False
    speedup_p50: float | None = None
    speedup_throughput: float | None = None
    server: str = "studentpack"
    levels: list[dict[str, Any]] = field(default_factory=list)  # per concurrency level: users, p50..., texts/s

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run": self.model.run,
            "variant": self.model.variant,
            "device": self.device,
            "server": self.server,
            "role": self.role,
            "baseline": self.baseline,
            "frontier": self.frontier,
            "params": self.params,
            "size_bytes": self.model.size_bytes,
            "method": self.method,
            "metrics": self.metrics,
            "score": self.score,
            "score_floor": self.floor,
            "latency_ms": self.latency,
            "latency_users": self.latency_users,
            "compared_p50_ms": self.compared_p50,
            "cpu_class": self.cpu_class,
            "best_throughput": self.best,
            "speedup_p50": self.speedup_p50,
            "speedup_throughput": self.speedup_throughput,
            "path": str(self.model.path),
            "sha256": self.model.sha256,
            "loadtest": self.loadtest,
            "levels": self.levels,
        }


def build_report(roots: list[Path]) -> dict[str, Any]:
    found = find(roots)
    rows = _rows(found)
    score = _score_rows(rows, found)
    devices = sorted({r.device for r in rows})
    compared_users: dict[str, int | None] = {}
    for device in devices:
        on_device = [r for r in rows if r.device == device]
        compared_users[device] = _compare_at_one_level(on_device)
        _speedups(on_device)
        _mark_frontier(on_device)
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "roots": [str(r) for r in roots],
        "headline_metrics": score["metrics"],
        "score": score,
        "compared_users": compared_users,
        "devices": devices,
        "headline": {d: _headline([r for r in rows if r.device == d], score, compared_users[d]) for d in devices},
        "rows": [r.to_json() for r in rows],
        "side_by_side": _side_by_side(rows),
        "machines": _machines(found),
        "notes": _notes(rows, found),
        "budgets": found.budgets,
        "skipped": found.skipped,
    }


# ------------------------------------------------------------------------------------------- rows


def _rows(found: Found) -> list[Row]:
    rows: list[Row] = []
    tested: set[tuple[str, str, str]] = set()
    for doc in sorted(found.loadtests, key=lambda d: d.get("created", "")):
        target = doc.get("target") or {}
        info = target.get("info") or {}
        model = found.models.get(info.get("sha256", ""))
        if model is None:
            found.skipped.append(f"{doc['_file']}: the served model's files were not found under the given dirs")
            continue
        device = _device(doc, info)
        server = str(target.get("server") or "studentpack")
        key = (model.sha256, device, server)
        if key in tested:  # a newer load test of the same files, device and server replaces the older
            rows = [r for r in rows if (r.model.sha256, r.device, r.server) != key]
        tested.add(key)
        row = _row(found, model, device, server)
        _latency(row, doc)
        rows.append(row)
    for model in found.models.values():
        if not any(r.model.sha256 == model.sha256 for r in rows) and _evals_of(found, model.sha256):
            rows.append(_row(found, model, "not served"))
    return sorted(
        rows,
        key=lambda r: (
            r.device,
            r.role != "teacher",
            r.model.run,
            _variant_order(r.model.variant),
            r.server != "studentpack",
        ),
    )


def _device(doc: dict[str, Any], info: dict[str, Any]) -> str:
    device = str(info.get("device") or "unknown")
    if device == "cuda":  # onnxruntime says "cuda", torch "cuda:0": one device
        device = "cuda:0"
    gpus = (doc.get("machine") or {}).get("gpus") or []
    if device.startswith("cuda") and gpus:
        return f"{device} ({gpus[0].split(',')[0]})"
    return device


def _variant_order(variant: str) -> int:
    order = ("torch", "fp32", "fused", "openvino", "int8-dynamic", "int8-static", "openvino-int8", "fp16")
    return order.index(variant) if variant in order else len(order)


def _row(found: Found, model: Model, device: str, server: str = "studentpack") -> Row:
    family = found.models.get(model.family)
    manifest = model.manifest or (family.manifest if family else None)
    role = "teacher" if model.family in found.teacher_shas else "student"
    run = "teacher" if role == "teacher" else model.run
    model.run = run
    params = (manifest or {}).get("student", {}).get("parameters")
    if params is None:
        params = parameter_count(family.path if family else model.path)
    name = f"{run} {model.variant}" + ("" if server == "studentpack" else f" on {server}")
    row = Row(model, device, name, role, params, _method(manifest, role), server=server)
    _accuracy(row, found)
    return row


def _method(manifest: dict[str, Any] | None, role: str) -> str:
    if role == "teacher":
        return "teacher"
    if not manifest:
        return "?"
    student = manifest.get("student") or {}
    teacher = manifest.get("teacher") or {}
    parts = [f"{manifest.get('method')}", f"{student.get('layers')}x{student.get('hidden')}"]
    if manifest.get("steps"):
        parts.append(f"{manifest['steps']} steps")
    method = str(manifest.get("method", ""))
    if "hs" in method.split("+") and manifest.get("layer_map"):
        pairs = manifest["layer_map"].get("pairs") or []
        parts.append(f"map {manifest['layer_map'].get('strategy')} " + ",".join(f"{s}:{t}" for s, t in pairs))
    if "mha" in method.split("+") and manifest.get("teacher_layer"):
        parts.append(
            f"T{manifest['teacher_layer']}/{teacher.get('layers')}, {manifest.get('relation_heads')} rel. heads"
        )
    init = manifest.get("init_map") or {}
    if init.get("pairs"):
        parts.append("init " + ",".join(str(t) for _, t in init["pairs"]))
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------- accuracy


def _evals_of(found: Found, sha: str) -> list[dict[str, Any]]:
    return [e for e in found.evals if (e.get("details") or {}).get("model_sha256") == sha]


def _pick(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task/mode: the newest served result, else the newest local one."""
    chosen: dict[str, dict[str, Any]] = {}
    for result in sorted(results, key=lambda e: (_served(e), e.get("created", ""))):
        chosen[f"{result.get('task')}/{result.get('mode')}"] = result
    return chosen


def _served(result: dict[str, Any]) -> bool:
    return bool((result.get("details") or {}).get("served"))


def _accuracy(row: Row, found: Found) -> None:
    for key, result in _pick(_evals_of(found, row.model.sha256)).items():
        row.metrics[key] = {
            "metric": result.get("metric"),
            "value": result.get("value"),
            "served": _served(result),
            "data": result.get("data"),
            "n": result.get("n"),
            "pct_of_teacher": None,
        }


def _teacher_reference(rows: list[Row], found: Found) -> dict[str, dict[str, Any]]:
    """The teacher's results per task/mode: its PyTorch directory's, else any teacher variant's."""
    teachers = sorted((r for r in rows if r.role == "teacher"), key=lambda r: r.model.variant != "torch")
    reference: dict[str, dict[str, Any]] = {}
    for row in reversed(teachers):
        reference.update(row.metrics)
    return reference


def _score_rows(rows: list[Row], found: Found) -> dict[str, Any]:
    """% of the teacher per labelled metric, and each row's score; returns what the score is."""
    reference = _teacher_reference(rows, found)
    for row in rows:
        for key, entry in row.metrics.items():
            ref = reference.get(key)
            same_data = ref is not None and ref.get("data") == entry.get("data") and ref.get("n") == entry.get("n")
            if key in LABELLED_METRICS and same_data and ref and ref.get("value") and entry.get("value") is not None:
                entry["pct_of_teacher"] = round(100.0 * entry["value"] / ref["value"], 2)
    labelled = [m for m in LABELLED_METRICS if m in reference][:2]
    if labelled:
        for row in rows:
            pcts = [row.metrics.get(m, {}).get("pct_of_teacher") for m in labelled]
            known = [float(p) for p in pcts if p is not None]
            row.score = round(statistics.fmean(known), 2) if len(known) == len(pcts) else None
            row.floor = round(min(known), 2) if row.score is not None else None
        return {"metrics": labelled, "kind": "pct_of_teacher", "label": "% of the teacher",
                "target": ACCURACY_TARGET, "target_source": "97% of the teacher on every labelled metric"}  # fmt: skip
    label_free = reference.get(LABEL_FREE_METRIC, {}).get("metric") == LABEL_FREE_VALUE
    for row in rows:
        entry = row.metrics.get(LABEL_FREE_METRIC) or {}
        if label_free and entry.get("metric") == LABEL_FREE_VALUE and entry.get("value") is not None:
            row.score = row.floor = round(float(entry["value"]), 2)
    if not label_free:
        return {"metrics": [], "kind": None, "label": "no metric shared with the teacher", "target": None,
                "target_source": None}  # fmt: skip
    return {"metrics": [LABEL_FREE_METRIC], "kind": "label_free",
            "label": "recall@10 of the teacher's nearest neighbours, held-out English (%)",
            "target": RECALL_AT_10_FOR_97,
            "target_source": "the recall@10 at which distilled students kept 97% of the teacher on STS-B and "
                              "the SST-2 probe (BENCHMARKS.md, A label-free accuracy)"}  # fmt: skip


# ------------------------------------------------------------------------------------------- latency


def _latency(row: Row, doc: dict[str, Any]) -> None:
    levels = [lv for lv in doc.get("levels", []) if lv.get("latency_ms")]
    row.loadtest = doc["_file"]
    row.levels = [
        {"users": lv["users"], **lv["latency_ms"], "texts_per_s": lv.get("texts_per_s"), "failures": lv.get("failures")}
        for lv in sorted(levels, key=lambda lv: lv["users"])
    ]
    if not levels:
        return
    lowest = min(levels, key=lambda lv: lv["users"])
    row.latency, row.latency_users = lowest["latency_ms"], lowest["users"]
    flags = (doc.get("machine") or {}).get("cpu_flags")
    row.cpu_class = cpu_class(flags, (doc.get("machine") or {}).get("machine")) if flags else None
    best = max(levels, key=lambda lv: lv["texts_per_s"])
    row.best = {"texts_per_s": best["texts_per_s"], "users": best["users"]}


def _baseline(rows: list[Row]) -> Row | None:
    return next((r for r in rows if r.role == "teacher" and r.model.variant == "torch" and r.server == "studentpack"
                 and r.latency), None)  # fmt: skip


def _compare_at_one_level(rows: list[Row]) -> int | None:
    """The concurrency level every comparison uses: the baseline's lowest, else the lowest most rows share.
    Each row's p50 there becomes `compared_p50`; a row not tested at that level is left out of comparisons."""
    baseline = _baseline(rows)
    lowest = [r.latency_users for r in rows if r.latency_users is not None]
    if baseline is not None:
        users = baseline.latency_users
    elif lowest:
        users = max(sorted(set(lowest)), key=lowest.count)
    else:
        return None
    for row in rows:
        level = next((lv for lv in row.levels if lv["users"] == users), None)
        row.compared_p50 = level["p50"] if level else None
    return users


def _speedups(rows: list[Row]) -> None:
    baseline = _baseline(rows)
    if baseline is None or baseline.compared_p50 is None:
        return
    baseline.baseline = True
    for row in rows:
        if row.compared_p50:
            row.speedup_p50 = round(baseline.compared_p50 / row.compared_p50, 2)
        if row.best and baseline.best:
            row.speedup_throughput = round(row.best["texts_per_s"] / baseline.best["texts_per_s"], 2)


def _side_by_side(rows: list[Row]) -> list[dict[str, Any]]:
    """Files load-tested behind several servers on one device: per level, each server's figures."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.levels:
            groups.setdefault((row.model.sha256, row.device), []).append(row)
    entries = []
    for (_, device), members in groups.items():
        if len({m.server for m in members}) < 2:
            continue
        ours = next((m for m in members if m.server == "studentpack"), None)
        entry: dict[str, Any] = {
            "model": f"{members[0].model.run} {members[0].model.variant}",
            "device": device,
            "servers": {
                m.server: m.levels for m in sorted(members, key=lambda m: (m.server != "studentpack", m.server))
            },
            "ratios": {},
        }
        if ours is not None:
            by_users = {lv["users"]: lv for lv in ours.levels}
            for other in (m for m in members if m is not ours):
                entry["ratios"][other.server] = [
                    {
                        "users": lv["users"],
                        "throughput_studentpack_over_other": _ratio(
                            by_users[lv["users"]]["texts_per_s"], lv["texts_per_s"]
                        ),
                        "p50_other_over_studentpack": _ratio(lv.get("p50"), by_users[lv["users"]].get("p50")),
                    }
                    for lv in other.levels
                    if lv["users"] in by_users
                ]
        entries.append(entry)
    return entries


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _mark_frontier(rows: list[Row]) -> None:
    """Rows no other row beats on both score and p50 at the comparison level."""
    points = [(r, r.compared_p50, r.score) for r in rows if r.score is not None and r.compared_p50 is not None]
    for row, p50, score in points:
        row.frontier = not any(
            other is not row and o_p50 <= p50 and o_score >= score and (o_p50 < p50 or o_score > score)
            for other, o_p50, o_score in points
        )


def _headline(rows: list[Row], score: dict[str, Any], users: int | None) -> dict[str, Any] | None:
    """The fastest student (p50 at the comparison level) that reaches the target on every labelled metric
    (or on the label-free recall), against the baseline; the most accurate when none does."""
    baseline = next((r for r in rows if r.baseline), None)
    students = [r for r in rows if r.role == "student" and r.score is not None and r.compared_p50 is not None]
    if not students:
        return None
    target = score.get("target")
    keeping = [r for r in students if target is not None and (r.floor or 0) >= target]
    if keeping:
        fastest = min(r.compared_p50 or 0.0 for r in keeping)
        # students of one shape serve at the same speed: differences inside SAME_SPEED are noise, so among
        # the rows that fast the more accurate one is named
        level = [r for r in keeping if (r.compared_p50 or 0.0) <= fastest * SAME_SPEED]
        best = max(level, key=lambda r: r.score or 0.0)
    else:
        best = max(students, key=lambda r: r.score or 0.0)
    return {
        "row": best.name,
        "meets_accuracy_target": bool(keeping),
        "score": best.score,
        "score_floor": best.floor,
        "pct_of_teacher": {
            m: best.metrics[m].get("pct_of_teacher")
            for m in score.get("metrics") or []
            if m in best.metrics and score.get("kind") == "pct_of_teacher"
        },
        "score_kind": score.get("kind"),
        "score_label": score.get("label"),
        "target": target,
        "p50_ms": best.compared_p50,
        "users": users,
        "baseline": baseline.name if baseline else None,
        "baseline_p50_ms": baseline.compared_p50 if baseline else None,
        "speedup_p50": best.speedup_p50,
        "speedup_throughput": best.speedup_throughput,
        "cpu_class": best.cpu_class,
    }


def _machines(found: Found) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for doc in found.loadtests:
        facts = doc.get("machine") or {}
        seen.setdefault(str(facts.get("cpu_model")) + str(facts.get("gpus")), facts)
    return list(seen.values())


def _notes(rows: list[Row], found: Found) -> list[str]:
    notes = []
    local = sorted({r.name for r in rows for m in r.metrics.values() if not m["served"]})
    if local:
        notes.append("measured locally, not through a served endpoint: " + ", ".join(local))
    if not any(r.baseline for r in rows):
        notes.append("no load test of the teacher's PyTorch directory: no baseline, no speed-ups")
    for doc in found.loadtests:
        notes.extend(f"{Path(doc['_file']).parent.name}: {n}" for n in doc.get("notes", []) if "saturated" in n)
    shared = [d for d in found.loadtests if any("share" in n for n in d.get("notes", []))]
    if shared:
        notes.append(f"load generator and server shared the machine's cores in {len(shared)} load test(s)")
    return notes


def write_report(roots: list[Path], out: Path) -> dict[str, Any]:
    """report.json, report.md and pareto.png under `out`, each written atomically."""
    from studentpack.bench.markdown import render
    from studentpack.bench.plot import plot
    from studentpack.ground import atomic

    atomic.check_writable_dir(out)
    report = build_report(roots)
    png = plot(report)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "report.json", report)
    atomic.write_text(out / "report.md", render(report))
    atomic.write_bytes(out / "pareto.png", png)
    return report
