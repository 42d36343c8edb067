"""Markdown tables from benchmarks/results/distill_study_*.json, for BENCHMARKS.md.

python benchmarks/study_tables.py            # every plan found
python benchmarks/study_tables.py comparison
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = (("stsb", "STS-B zero-shot"), ("sst2", "SST-2 probe"), ("stsb-ft", "STS-B fine-tuned"),
           ("sst2-ft", "SST-2 fine-tuned"))  # fmt: skip


def table(report: dict) -> str:
    present = [(k, label) for k, label in METRICS if any(k in r["metrics"] for r in report["rows"])]
    head = ["run", "method", "student", "seeds", "tokens seen", "tokens/s"]
    head += [f"{label} (% of teacher)" for _, label in present]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    teacher = report["teacher"]
    lines.append("| teacher | | 6x384 | | | | " + " | ".join(
        f"{teacher[k]:.2f} (100)" if teacher.get(k) is not None else "" for k, _ in present) + " |")  # fmt: skip
    for group, stats in report["groups"].items():
        rows = [r for r in report["rows"] if r["group"] == group]
        first = rows[0]
        student = f"{first['student']['layers']}x{first['student']['hidden']}"
        cells = [group, first["method"], student, ",".join(str(s) for s in stats["seeds"]),
                 f"{first['tokens_seen']:,}", f"{first['tokens_per_s']:,.0f}"]  # fmt: skip
        for key, _ in present:
            values = [r["metrics"].get(key) for r in rows if r["metrics"].get(key) is not None]
            if not values:
                cells.append("")
                continue
            mean = sum(values) / len(values)
            pct = stats.get(key, {})
            spread = f" ± {pct['spread'] / 2:.2f}" if len(values) > 1 else ""
            cells.append(f"{mean:.2f} ({pct.get('mean', float('nan')):.1f}{spread})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    plans = sys.argv[1:] or sorted(p.stem.removeprefix("distill_study_") for p in RESULTS.glob("distill_study_*.json"))
    for plan in plans:
        report = json.loads((RESULTS / f"distill_study_{plan}.json").read_text())
        print(f"### {plan}\n\n{table(report)}\n")


if __name__ == "__main__":
    main()
