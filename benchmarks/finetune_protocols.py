"""STS-B (or SST-2) fine-tuned by the given recipes, over seeds, next to each model's score without fine-tuning
(STS-B zero-shot, SST-2 probe), for the teacher and the students given; students are also given as % of the
teacher tuned by the same recipe and seed.

    python benchmarks/finetune_protocols.py teacher=default mha-l3=runs/pipeline/mha-l3/student \\
        hs-l2=runs/pipeline/hs-l2/student --seeds 0,1 \\
        --recipe biencoder:1:2e-5 --recipe finetune:3:1e-4 --work runs/finetune-protocols

A recipe is PROTOCOL:EPOCHS:LR[:EXTRA], PROTOCOL `biencoder` (`eval --mode biencoder`: the embedding itself,
cosine loss) or `finetune` (`eval --mode finetune`: a cross-encoder with a regression head, the paper's
protocol); EXTRA is more `eval` flags, comma-separated (`--warmup=0.2`). `--teacher=DIR` in EXTRA (with
`--soft-weight=W`, `--temperature=T`) distils the task from DIR, a fine-tuned teacher: the teacher's own row
under such a recipe is its run without those flags. Every (model, recipe, seed) is one `studentpack eval`
whose JSON stays in --work: a second call runs only what is missing, so recipes and seeds can be added
across sessions. Writes benchmarks/results/finetune_protocols.json (--task sst2:
finetune_protocols_sst2.json); on SST-2 only `finetune` applies (a classifier, all train rows unless
`--train-limit=N` is in EXTRA):

    python benchmarks/finetune_protocols.py teacher=default mha-l3=... hs-l2=... --task sst2 \\
        --seeds 0,1 --recipe finetune:1:1e-4 --work runs/finetune-protocols
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine

ROOT = Path(__file__).resolve().parents[1]


def _eval(args: list[str], out: Path) -> dict[str, Any]:
    """One `studentpack eval --json`, kept in `out` (read back when it is already there)."""
    if not out.is_file():
        print(f"[protocols] eval {' '.join(args)}", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "studentpack", "eval", *args, "--json"], capture_output=True,
                              text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            raise SystemExit(said[-1] if said else f"studentpack eval exited with {done.returncode}")
        atomic.write_text(out, done.stdout)
    return json.loads(out.read_text())


def _recipe_args(recipe: str) -> list[str]:
    """`eval` flags of PROTOCOL:EPOCHS:LR[:EXTRA]."""
    protocol, epochs, lr, *extra = recipe.split(":", 3)
    if protocol not in ("biencoder", "finetune"):
        raise SystemExit(f"recipe {recipe}: the protocol is biencoder or finetune")
    flags = [flag for item in extra for part in item.split(",") for flag in part.split("=", 1)]
    return ["--mode", protocol, "--epochs", epochs, "--lr", lr, *flags]


def _undistilled(recipe: str) -> str:
    """The recipe without its task-distillation flags (`--teacher`, `--soft-weight`, `--temperature`)."""
    protocol, epochs, lr, *extra = recipe.split(":", 3)
    kept = [flag for item in extra for flag in item.split(",")
            if not flag.startswith(("--teacher=", "--soft-weight=", "--temperature="))]  # fmt: skip
    return ":".join([protocol, epochs, lr, *([",".join(kept)] if kept else [])])


def _recipe_tag(recipe: str) -> str:
    """A recipe as part of a file name (`finetune:1:1e-4:--teacher=runs/t` -> `finetune_1_1e-4_--teacher-runs-t`)."""
    return recipe.replace(":", "_").replace("=", "").replace(",", "_").replace("/", "-")


def _summary(values: list[float]) -> dict[str, Any]:
    return {"mean": round(statistics.fmean(values), 2), "spread": round(max(values) - min(values), 2),
            "values": [round(v, 2) for v in values]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME=PATH (the first is the teacher)")
    parser.add_argument("--task", choices=("stsb", "sst2"), default="stsb")
    parser.add_argument("--data", help="a directory with train.* and dev.* (default ../shared/data/<task>)")
    parser.add_argument("--recipe", dest="recipes", action="append", default=[], metavar="PROTOCOL:EPOCHS:LR[:EXTRA]")
    parser.add_argument("--seeds", default="0")
    parser.add_argument(
        "--teacher-seeds",
        help="the teacher's seeds, when fewer (default: --seeds; its runs already in --work are used too); a "
        "student's seed without its teacher run is set against the mean of the teacher's",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "finetune-protocols")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="default benchmarks/results/finetune_protocols[_sst2].json")
    args = parser.parse_args()
    args.data = args.data or str(ROOT.parent / "shared" / "data" / args.task)
    suffix = "" if args.task == "stsb" else f"_{args.task}"
    args.out = args.out or ROOT / "benchmarks" / "results" / f"finetune_protocols{suffix}.json"
    models = dict(item.split("=", 1) for item in args.models)
    seeds = [int(s) for s in args.seeds.split(",")]
    teacher_seeds = [int(s) for s in (args.teacher_seeds or args.seeds).split(",")]
    recipes = args.recipes or ["biencoder:1:2e-5" if args.task == "stsb" else "finetune:1:5e-5"]
    args.work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    for name, path in models.items():  # the zero-shot scores first: they need no training
        base = [path, "--task", args.task, "--data", args.data, "--threads", str(args.threads)]
        untuned = args.work / f"{'zs' if args.task == 'stsb' else args.task + '-probe'}-{name}.json"
        rows[name] = {"model": path, "zeroshot": _eval([*base, "--no-save"], untuned)["value"]}
    for recipe in recipes:  # every model's first seed before any second seed: a run cut short still compares
        for seed in seeds:
            for index, (name, path) in enumerate(models.items()):
                base = [path, "--task", args.task, "--data", args.data, "--threads", str(args.threads)]
                prefix = "" if args.task == "stsb" else f"{args.task}-"
                # the teacher under a distilling recipe is its own plain run: the model the students learn from
                own = _undistilled(recipe) if index == 0 else recipe
                flags = _recipe_args(own)
                tag = f"{prefix}{name}-{_recipe_tag(own)}-s{seed}"
                if index == 0 and seed not in teacher_seeds and not (args.work / f"{tag}.json").is_file():
                    continue  # a teacher run of this seed is used when an earlier call made it
                result = _eval([*base, *flags, "--seed", str(seed), "--no-save"], args.work / f"{tag}.json")
                rows[name].setdefault(recipe, {})[str(seed)] = {
                    "value": result["value"], "train_seconds": result["details"]["train_seconds"],
                    "steps": result["details"]["steps"], "final_loss": result["details"]["final_loss"],
                }  # fmt: skip
    teacher = next(iter(rows.values()))
    for row in rows.values():
        row["zeroshot_pct_of_teacher"] = round(100 * row["zeroshot"] / teacher["zeroshot"], 1)
        for recipe in recipes:
            runs, by_teacher = row.get(recipe, {}), teacher.get(recipe, {})
            done = [s for s in runs if s.isdigit()]
            if not done or not by_teacher:
                continue
            mean = statistics.fmean(by_teacher[s]["value"] for s in by_teacher if s.isdigit())
            reference = {s: by_teacher[s]["value"] if s in by_teacher else mean for s in done}
            runs["score"] = _summary([runs[s]["value"] for s in done])
            runs["pct_of_teacher"] = _summary([100 * runs[s]["value"] / reference[s] for s in done])
            runs["above_zeroshot"] = all(runs[s]["value"] >= row["zeroshot"] for s in done)
    result = {"machine": {**machine(), "cpu_class": cpu_class(cpu_flags())}, "task": args.task, "data": args.data,
              "untuned": "zero-shot" if args.task == "stsb" else "probe", "seeds": seeds,
              "recipes": recipes, "models": rows}  # fmt: skip
    atomic.write_json(args.out, result)
    print(json.dumps({n: {r: row[r].get("pct_of_teacher") for r in recipes if r in row} for n, row in rows.items()},
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
