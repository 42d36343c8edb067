"""The distillation study: which transfer, which student, which data, at an equal budget.

Each plan is a list of runs; every run is `studentpack distill` with the same optimiser, seed and
token budget unless the plan varies them, then scored by `studentpack.tasks` on the shared data:

  stsb   STS-B dev zero-shot, Spearman x100
  sst2   SST-2 dev accuracy of a logistic-regression probe on frozen embeddings (--probe-train rows)
  stsb-ft / sst2-ft   (with --finetune) the same after fine-tuning the encoder with a task head

each also as % of the teacher's own score on the same data. Runs and scores are cached under
--runs: re-running a plan trains and scores only what is missing, and an interrupted distillation
continues from its last checkpoint (so a plan longer than a session is finished by running it again).

Plans:
  packing     the quick main job (MHA, 3 layers, embedded corpus, default steps) with and without packing
  quick       variants of the quick main job (corpus, learning rate, method...) against the initialisation
  budget      like quick, in its own results file: what a shorter or longer run of the defaults buys (the
              pipeline's time budget)
  comparison  the seed paper's question: OD, HS (each named layer map), MHA, HS+MHA and the
              sentence-transformers baseline (EMB) on 3x384, 2x384 and 4x256 students, seeds --seeds
  curve       the best method's quality against tokens seen (checkpoints of one long run)
  tune        variants of the comparison's best 3-layer run (HS, uniform-last), as distill flags, on
              the comparison's corpus and budget: --variant lr2e-4="--lr 2e-4"
  seeded      variants of `studentpack distill`'s own defaults (embedded corpus, its steps), each run
              for every seed in --seeds and averaged: --variant l2-lr6e-4="--student-layers 2 --lr 6e-4"

    python benchmarks/distill_study.py packing
    python benchmarks/distill_study.py comparison --steps 300 --seeds 0,1 --finetune
    python benchmarks/distill_study.py comparison --steps 20000 --batch-size 64 --device cuda   # paper-sized

Writes benchmarks/results/distill_study_<plan>.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studentpack.cli import main as cli
from studentpack.ground import atomic
from studentpack.ground.provenance import machine, package_versions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
WIKITEXT = [str(SHARED / "wikitext-2" / f) for f in ("valid.txt", "test.txt")]


_SHIPPED_CORPUS = ("packing", "quick", "budget", "seeded")  # plans on the defaults' corpus and inputs


@dataclass
class Run:
    name: str
    method: str
    args: list[str] = field(default_factory=list)  # extra distill flags
    seed: int = 0
    group: str = ""  # rows with the same group and different seeds are averaged


def study_corpus(runs: Path) -> list[str]:
    """WikiText-2 (both files) plus the SST-2 train sentences as plain text."""
    sst2_text = runs / "corpus" / "sst2-train.txt"
    if not sst2_text.is_file() or not sst2_text.stat().st_size > 100_000:
        header, *lines = (SHARED / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
        column = header.split("\t").index("sentence")
        sentences = [line.split("\t")[column] for line in lines if line.strip()]
        atomic.write_text(sst2_text, "\n".join(sentences) + "\n")
    return [*WIKITEXT, str(sst2_text)]


def plan_runs(args: argparse.Namespace) -> list[Run]:
    seeds = [int(s) for s in args.seeds.split(",")]
    init = Run("init", "mha", ["--steps", "1", "--lr", "1e-30", "--warmup", "0"])  # the untrained student
    if args.plan == "packing":
        return [init, Run("packed", "mha"), Run("lines", "mha", ["--no-pack"])]
    if args.plan in ("quick", "budget"):  # variants of the quick main job: --variant NAME="distill flags"
        return [init, *(Run(name, "mha", shlex.split(flags)) for name, flags in args.variants)]
    if args.plan == "tune":  # variants of the comparison's best 3-layer run, on its corpus and budget
        base = ["--layer-map", "uniform-last"]
        return [init, *(Run(name, "hs", [*base, *shlex.split(flags)]) for name, flags in args.variants)]
    if args.plan == "seeded":  # every variant's first seed before any second seed: a plan cut short still compares
        return [Run(f"{name}-s{seed}", "hs", shlex.split(flags), seed, name)
                for seed in seeds for name, flags in args.variants]  # fmt: skip
    if args.plan == "curve":
        every = str(max(1, args.steps // 8))
        return [init, Run(f"curve-{args.curve_method}", args.curve_method, ["--snapshot-every", every])]
    runs: list[Run] = []
    shapes = {"l3": ["--student-layers", "3"], "l2": ["--student-layers", "2"],
              "l4h256": ["--student-layers", "4", "--student-hidden", "256"]}  # fmt: skip
    methods: list[tuple[str, str, list[str]]] = [
        ("od", "od", []),
        ("hs-last", "hs", ["--layer-map", "last"]),
        ("hs-top", "hs", ["--layer-map", "top"]),
        ("hs-uniform", "hs", ["--layer-map", "uniform"]),
        ("hs-uniform-last", "hs", ["--layer-map", "uniform-last"]),
        ("mha", "mha", []),
        ("hs+mha", "hs+mha", ["--layer-map", "uniform-last"]),
        ("emb", "emb", []),
    ]
    # the first seed of every student before the other seeds of the 3-layer one: a plan cut short still compares
    for seed, shape in [(seed, shape) for seed in seeds for shape in shapes if shape == "l3" or seed == seeds[0]]:
        shape_args = shapes[shape]
        runs.append(Run(f"{shape}-init-s{seed}", "mha", [*shape_args, "--steps", "1", "--lr", "1e-30", "--warmup", "0"],
                        seed, f"{shape}-init"))  # fmt: skip
        for label, method, extra in methods:
            runs.append(Run(f"{shape}-{label}-s{seed}", method, [*shape_args, *extra], seed, f"{shape}-{label}"))
    return runs


def distill(run: Run, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train (or resume, or reuse) one run; its manifest."""
    manifest = out / "student" / "studentpack.json"
    if not manifest.is_file():
        if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
            argv = ["distill", "--resume", str(out), "--quiet"]
        else:
            corpus = [] if args.plan in _SHIPPED_CORPUS else [x for c in study_corpus(args.runs)
                                                                    for x in ("--corpus", c)]  # fmt: skip
            budget = [] if args.plan in _SHIPPED_CORPUS else ["--steps", str(args.steps), "--batch-size",
                                                                   str(args.batch_size)]  # fmt: skip
            # the comparison, curve and tune rows were measured on joined packing of whole lines: keep new
            # rows comparable whatever the defaults (a variant may still pass --isolate-lines: the last flag wins)
            joined = [] if args.plan in _SHIPPED_CORPUS else ["--no-isolate-lines", "--no-split-sentences"]
            argv = ["distill", "--method", run.method, "--seed", str(run.seed), *corpus, *budget, *joined, *run.args,
                    "--device", args.device, "--checkpoint-every", str(args.checkpoint_every), "--out", str(out),
                    "--overwrite", "--quiet"]  # fmt: skip
        print(f"[study] distill {run.name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        if cli(argv) != 0:
            raise SystemExit(f"distill {run.name} failed")
    return json.loads(manifest.read_text())


def score(model: Path, args: argparse.Namespace, cache: Path) -> dict[str, float | None]:
    """The study's metrics for one model directory, cached in `cache` (keyed by metric and settings)."""
    from studentpack.tasks.options import EvalConfig
    from studentpack.tasks.run import evaluate

    done = json.loads(cache.read_text()) if cache.is_file() else {}
    wanted: dict[str, dict[str, Any]] = {
        "stsb": {"task": "stsb", "data": str(SHARED / "stsb" / "dev.tsv")},
        "sst2": {"task": "sst2", "data": str(SHARED / "sst2"), "train_limit": args.probe_train},
    }
    if args.finetune:
        recipe = {"epochs": args.finetune_epochs, "lr": args.finetune_lr}
        wanted["stsb-ft"] = {"task": "stsb", "mode": "finetune", "data": str(SHARED / "stsb"), **recipe}
        wanted["sst2-ft"] = {"task": "sst2", "mode": "finetune", "data": str(SHARED / "sst2"),
                             "train_limit": args.finetune_train, **recipe}  # fmt: skip
    out: dict[str, float | None] = {}
    for name, options in wanted.items():
        key = f"{name}:{json.dumps(options, sort_keys=True)}"
        if key not in done:
            done[key] = evaluate(EvalConfig(model=str(model), save=False, **options)).result.value
            atomic.write_json(cache, done)
        out[name] = done[key]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan", choices=["packing", "quick", "budget", "comparison", "curve", "tune", "seeded"])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "study")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--probe-train", type=int, default=10000)
    parser.add_argument("--finetune", action="store_true", help="also fine-tune on STS-B and SST-2 (slow on a CPU)")
    parser.add_argument("--finetune-train", type=int, default=8000, help="SST-2 fine-tuning rows")
    # one epoch at 5e-5 left 3-layer students near 36 on STS-B fine-tuned (a fresh regression head barely
    # moves in 180 steps); three at 1e-4 gave 76.6 for the same student
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--curve-method", default="mha")
    parser.add_argument("--variant", dest="variants", action="append", default=[],
                        type=lambda s: tuple(s.split("=", 1)), metavar='NAME="FLAGS"',
                        help="quick, tune and seeded plans: a variant, as distill flags (repeatable)")  # fmt: skip
    parser.add_argument("--only", help="comma list of run names to do now (the rest are reported if cached)")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    teacher = score(Path(str(_teacher())), args, args.runs / "teacher-scores.json")
    rows = []
    only = set(args.only.split(",")) if args.only else None
    committed = _committed_rows(args)  # rows of an earlier session, same settings: not trained again
    for run in plan_runs(args):
        out = args.runs / args.plan / run.name
        if run.name in committed and not (out / "student" / "studentpack.json").is_file():
            rows.append(committed[run.name])
            continue
        if only is not None and run.name not in only and not (out / "student" / "studentpack.json").is_file():
            continue
        started = time.perf_counter()
        manifest = distill(run, args, out)
        metrics = score(out / "student", args, out / "study-scores.json")
        rows.append(_row(run, manifest, metrics, teacher, time.perf_counter() - started))
        print(f"[study] {run.name}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if v is not None),
              file=sys.stderr, flush=True)  # fmt: skip
        _write(args, teacher, rows)  # after every run: a plan cut short by the end of a session keeps its rows
        if args.plan == "curve" and run.name != "init":
            rows[-1]["curve"] = _curve(out, args)
            _write(args, teacher, rows)
            _plot_curve(rows, teacher)
    _write(args, teacher, rows)


def _curve(out: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Scores of every snapshot and of the final student, by tokens seen."""
    points = []
    for directory in [*sorted((out / "snapshots").glob("step-*")), out / "student"]:
        manifest = json.loads((directory / "studentpack.json").read_text())
        cache = (
            out / "study-scores.json" if directory.name == "student" else directory.parent / f"{directory.name}.json"
        )
        metrics = score(directory, args, cache)
        points.append({"step": manifest.get("snapshot_step", manifest["steps"]), "tokens": manifest["tokens_seen"],
                       "metrics": metrics})  # fmt: skip
    return points


def _plot_curve(rows: list[dict[str, Any]], teacher: dict[str, float | None]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    init = next((r for r in rows if r["name"] == "init"), None)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for row in (r for r in rows if "curve" in r):
        for metric, color in (("stsb", "#1f77b4"), ("sst2", "#d62728")):
            ref = teacher.get(metric)
            points = [
                (p["tokens"], 100 * p["metrics"][metric] / ref)
                for p in row["curve"]
                if ref and p["metrics"].get(metric)
            ]
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", color=color,
                    label=f"{row['method']}: {metric}")  # fmt: skip
            if init and metric in init["pct_of_teacher"]:
                ax.axhline(init["pct_of_teacher"][metric], color=color, linestyle=":", linewidth=1,
                           label=f"untrained student: {metric}")  # fmt: skip
    ax.axhline(100, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("% of the teacher")
    ax.set_title("learning curve: STS-B zero-shot and SST-2 probe against tokens seen")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "learning_curve.png", dpi=120)
    plt.close(fig)


def _settings_key(args: argparse.Namespace) -> str:
    keys = ("steps", "batch_size", "probe_train", "finetune", "finetune_train", "finetune_epochs", "finetune_lr",
            "device", "variants", "curve_method")  # fmt: skip
    return json.dumps({k: str(getattr(args, k)) for k in keys}, sort_keys=True)


def _committed_rows(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    path = RESULTS / f"distill_study_{args.plan}.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    if report.get("settings_key") != _settings_key(args):
        return {}
    return {row["name"]: row for row in report.get("rows", [])}


def _write(args: argparse.Namespace, teacher: dict[str, float | None], rows: list[dict[str, Any]]) -> None:
    report = {"benchmark": "distill_study", "plan": args.plan, "settings_key": _settings_key(args),
              "settings": {k: str(v) for k, v in vars(args).items()},
              "teacher": teacher, "rows": rows, "groups": _groups(rows), "machine": machine(),
              "versions": package_versions()}  # fmt: skip
    atomic.write_json(RESULTS / f"distill_study_{args.plan}.json", report)


def _teacher() -> Path:
    from studentpack.text.sources import packaged_teacher_dir

    return packaged_teacher_dir()


def _row(run: Run, manifest: dict[str, Any], metrics: dict[str, float | None], teacher: dict[str, float | None],
         seconds: float) -> dict[str, Any]:  # fmt: skip
    pct = {k: round(100 * v / t, 2) for k, v in metrics.items() if v is not None and (t := teacher.get(k))}
    return {
        "name": run.name,
        "group": run.group or run.name,
        "method": manifest["method"],
        "seed": manifest.get("seed", run.seed),  # a variant may pass --seed
        "student": manifest["student"],
        "steps": manifest["steps"],
        "pack": manifest["config"].get("pack"),
        "isolate_lines": manifest["config"].get("isolate_lines", False),
        "split_sentences": manifest["config"].get("split_sentences", False),
        "tokens_seen": manifest.get("tokens_seen"),
        "tokens_per_s": manifest.get("tokens_per_s"),
        "distill_seconds": manifest.get("train_seconds"),
        "corpus": manifest["corpus"]["sources"],
        "metrics": metrics,
        "pct_of_teacher": pct,
        "wall_seconds_this_call": round(seconds, 1),
    }


def _groups(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and spread (max - min) over seeds for every metric's % of the teacher."""
    out: dict[str, dict[str, Any]] = {}
    for group in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == group]
        metrics = sorted({k for r in members for k in r["pct_of_teacher"]})
        out[group] = {"seeds": [r["seed"] for r in members]}
        for metric in metrics:
            values = [r["pct_of_teacher"][metric] for r in members if metric in r["pct_of_teacher"]]
            out[group][metric] = {
                "mean": round(statistics.fmean(values), 2),
                "spread": round(max(values) - min(values), 2),
            }
    return out


if __name__ == "__main__":
    main()
