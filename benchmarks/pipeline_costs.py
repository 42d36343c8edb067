"""How well the pipeline's cost model predicted a finished run: per unit, estimated against measured seconds.

Reads a pipeline directory's pipeline.json (each unit's measured seconds and the budget plan, with the
calibration taken at the start), prices the same units with bench/budget.py's model at that calibration,
and writes the comparison: per unit and per kind of unit (distill, export, load test, ...), the measured
seconds, the estimate, and their ratio. The reference figures in bench/budget.py were set from such runs
on the reference machine; on another machine the ratios say how honest its first estimate of the time
left was.

    python benchmarks/pipeline_costs.py runs/pipeline [--out benchmarks/results/pipeline_costs.json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from studentpack.bench.pipeline_config import PipelineConfig
from studentpack.bench.pipeline_plan import SERVED, unit_estimates
from studentpack.config import build
from studentpack.ground import atomic
from studentpack.ground.provenance import machine, package_versions

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished pipeline directory (holds pipeline.json)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline_costs.json")
    args = parser.parse_args()
    ledger = json.loads((args.run / "pipeline.json").read_text())
    summary = json.loads((args.run / "pipeline-summary.json").read_text())
    cfg = build(PipelineConfig, summary["config"])
    plan = ledger["budget"]["plan"]
    factor = float((plan.get("calibration") or {}).get("factor") or 1.0)
    students = [replace(s, steps=plan["steps"][s.name]) for s in cfg.students if s.name in plan["steps"]]
    mappings = {s.name: json.loads((args.run / "logs" / f"{s.name}.distill.json").read_text()) for s in students}
    tasks = sorted({u.split(":")[2] for u in ledger["units"] if u.startswith(("eval:", "served-eval:"))})
    from studentpack.bench.input_digests import corpus_chars

    estimates = unit_estimates(cfg, students, mappings, tasks, corpus_chars(cfg), factor)
    runs = ["teacher", *(s.name for s in students)]
    units = []
    for unit, entry in ledger["units"].items():
        estimate = estimates.get(unit, estimates.get(_planned(unit, runs)))
        units.append({"unit": unit, "measured_s": entry["seconds"], "estimated_s": round(estimate, 1) if estimate
                      else None, "ratio": round(entry["seconds"] / estimate, 2) if estimate else None})  # fmt: skip
    kinds: dict[str, dict[str, float]] = {}
    for u in units:
        kind = kinds.setdefault(u["unit"].split(":")[0], {"measured_s": 0.0, "estimated_s": 0.0})
        kind["measured_s"] += u["measured_s"]
        kind["estimated_s"] += u["estimated_s"] or 0.0
    for kind in kinds.values():
        kind["ratio"] = round(kind["measured_s"] / kind["estimated_s"], 2) if kind["estimated_s"] else None
    total = {"measured_s": round(summary["seconds"], 1), "estimated_s": plan["estimate_s"],
             "ratio": round(summary["seconds"] / plan["estimate_s"], 2) if plan["estimate_s"] else None}  # fmt: skip
    report: dict[str, Any] = {"benchmark": "pipeline_costs", "run": str(args.run), "calibration": plan["calibration"],
                              "total": total, "kinds": kinds, "units": units, "machine": machine(),
                              "versions": package_versions()}  # fmt: skip
    atomic.write_json(args.out, report)
    for name, kind in sorted(kinds.items()):
        print(f"{name:12s} measured {kind['measured_s']:7.1f} s  estimated {kind['estimated_s']:7.1f} s  "
              f"ratio {kind['ratio']}")  # fmt: skip
    print(f"{'whole run':12s} measured {total['measured_s']:7.1f} s  estimated {total['estimated_s']:7.1f} s  "
          f"ratio {total['ratio']}")  # fmt: skip


def _planned(unit: str, runs: list[str]) -> str:
    """loadtest:hs-l3-int8-dynamic -> loadtest:hs-l3-served: the name the plan gave the served variant."""
    kind, _, rest = unit.partition(":")
    name, _, task = rest.partition(":")
    for run in sorted(runs, key=len, reverse=True):
        if name.startswith(f"{run}-") and name != f"{run}-torch":
            return ":".join(part for part in (kind, f"{run}-{SERVED}", task) if part)
    return unit


if __name__ == "__main__":
    main()
