"""What distillation buys: zero-shot STS-B of the teacher, the untrained student and each method.

The student (3 of the teacher's 6 layers, copied by the default init map) is scored before any
training and after `studentpack distill` with each method at the same budget (default: 300 steps of
16 WikiText-2 paragraphs), all through `studentpack.tasks` (the code behind `studentpack eval`).
Writes benchmarks/results/distill_quality.json.

    python benchmarks/distill_quality.py [--steps 300] [--methods mha,hs,od] [--runs runs/quality]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from studentpack.cli import main as cli
from studentpack.ground import atomic
from studentpack.ground.provenance import machine, package_versions
from studentpack.tasks.options import EvalConfig
from studentpack.tasks.run import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "distill_quality.json"


def stsb(model: str) -> dict:
    config = EvalConfig(model=model, task="stsb", data=str(SHARED / "stsb" / "dev.tsv"), save=False)
    result = evaluate(config).result
    return {"spearman": result.value, "pearson": result.metrics.get("pearson"), "n": result.n}


def distill(method: str, out: Path, args: argparse.Namespace, *extra: str) -> None:
    corpus = [x for f in ("valid.txt", "test.txt") for x in ("--corpus", str(SHARED / "wikitext-2" / f))]
    argv = ["distill", "--method", method, "--student-layers", "3", "--steps", str(args.steps), "--batch-size", "16",
            *corpus, "--out", str(out), "--overwrite", "--quiet", *extra]  # fmt: skip
    if cli(argv) != 0:
        raise SystemExit(f"distill {method} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--methods", default="mha,hs,od")
    parser.add_argument("--runs", type=Path, default=Path("runs/quality"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows: dict[str, dict] = {"teacher": stsb("default")}
    # one step at a vanishing learning rate writes the initialised student through the normal code path
    distill("mha", args.runs / "init", args, "--steps", "1", "--lr", "1e-30", "--warmup", "0")
    rows["init (no training)"] = stsb(str(args.runs / "init" / "student"))
    for method in args.methods.split(","):
        start = time.perf_counter()
        distill(method, args.runs / method, args)
        manifest = json.loads((args.runs / method / "student" / "studentpack.json").read_text())
        rows[method] = {**stsb(str(args.runs / method / "student")), "distill_seconds": time.perf_counter() - start,
                        "tokens_seen": manifest["tokens_seen"], "init": manifest["init"]}  # fmt: skip
    teacher = rows["teacher"]["spearman"]
    for row in rows.values():
        row["percent_of_teacher"] = round(100 * row["spearman"] / teacher, 2)
    report = {"benchmark": "distill_quality", "task": "STS-B dev zero-shot, Spearman x100", "steps": args.steps,
              "rows": rows, "machine": machine(), "versions": package_versions()}  # fmt: skip
    atomic.write_json(args.out, report)
    for name, row in rows.items():
        print(f"{name:20s} {row['spearman']:6.2f}  ({row['percent_of_teacher']:.1f}% of teacher)")


if __name__ == "__main__":
    main()
