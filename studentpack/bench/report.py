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

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studentpack.bench.collect import Found, find
from studentpack.bench.report_compare import compare_at_one_level, headline, mark_frontier, set_speedups, side_by_side
from studentpack.bench.report_rows import Row, build_rows
from studentpack.bench.report_score import score_rows

SCHEMA = "studentpack.report/1"


def build_report(roots: list[Path]) -> dict[str, Any]:
    found = find(roots)
    rows = build_rows(found)
    score = score_rows(rows)
    devices = sorted({r.device for r in rows})
    compared_users: dict[str, int | None] = {}
    for device in devices:
        on_device = [r for r in rows if r.device == device]
        compared_users[device] = compare_at_one_level(on_device)
        set_speedups(on_device)
        mark_frontier(on_device)
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "roots": [str(r) for r in roots],
        "headline_metrics": score["metrics"],
        "score": score,
        "compared_users": compared_users,
        "devices": devices,
        "headline": {d: headline([r for r in rows if r.device == d], score, compared_users[d]) for d in devices},
        "rows": [r.to_json() for r in rows],
        "side_by_side": side_by_side(rows),
        "machines": _machines(found),
        "notes": _notes(rows, found),
        "budgets": found.budgets,
        "skipped": found.skipped,
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
    """report.json, report.md and pareto.svg under `out`, each written atomically."""
    from studentpack.bench.markdown import render
    from studentpack.bench.plot import PLOT_FILE, plot
    from studentpack.ground import atomic

    atomic.check_writable_dir(out)
    report = build_report(roots)
    svg = plot(report)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "report.json", report)
    atomic.write_text(out / "report.md", render(report))
    atomic.write_bytes(out / PLOT_FILE, svg)
    return report
