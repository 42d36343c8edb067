"""Distillation throughput per method vs the teacher's forward-only throughput, in one run.

Setting: packaged teacher (all-MiniLM-L6-v2, 6 layers), 3-layer student, sequences of
exactly 128 tokens, 2 threads. A distillation step costs one teacher forward plus the student's
forward and backward, so for 3 of 6 layers the ceiling is about 0.4x the teacher's forward-only
throughput. Writes benchmarks/results/distill_throughput.json with medians and ratios.

    python benchmarks/bench_distill.py [--steps 12] [--batch-size 16] [--methods mha,hs,od]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from studentpack.distill.config import DistillConfig
from studentpack.distill.data import BatchPlan, Chunks
from studentpack.distill.plan import make_plan
from studentpack.distill.rundir import RunDir
from studentpack.distill.trainer import Distiller
from studentpack.ground import atomic
from studentpack.ground.numerics import tune_for_training
from studentpack.ground.provenance import cpu_flags, machine, package_versions
from studentpack.model.student import StudentSpec

CORPUS = Path(__file__).resolve().parents[2] / "shared/data/wikitext-2/valid.txt"
RESULTS = Path(__file__).resolve().parent / "results" / "distill_throughput.json"


def full_length(distiller: Distiller, length: int) -> None:
    """Keep only chunks of exactly `length` tokens, so every batch is (B, length) with no padding."""
    distiller.chunks = Chunks([s for s in distiller.chunks.sequences if len(s) == length])


def time_steps(fn, steps: int, warmup: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        fn(i)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def bench_method(method: str, args: argparse.Namespace, tmp: Path) -> tuple[dict, Distiller]:
    config = DistillConfig(
        method=method,  # type: ignore[arg-type]
        corpus=(str(CORPUS),),
        student=StudentSpec(layers=3),
        batch_size=args.batch_size,
        max_length=128,
        isolate_lines=False,  # full 128-token rows of joined lines: the engine's speed, no padding, no line masks
        split_sentences=False,
        steps=10_000,
        fit_head_steps=0,
        threads=args.threads,
    )
    distiller = Distiller(make_plan(config), RunDir(tmp / method), progress=False)
    distiller._load()
    full_length(distiller, 128)
    optimizer = distiller._optimizer()
    plan = BatchPlan(len(distiller.chunks.sequences), args.batch_size, 1, 0)
    distiller.bundle.train()
    times = time_steps(lambda i: distiller._step(optimizer, plan, i), args.steps, args.warmup)
    tokens = args.batch_size * 128
    return {"median_step_s": statistics.median(times), "tokens_per_s": tokens / statistics.median(times)}, distiller


def bench_teacher(distiller: Distiller, args: argparse.Namespace) -> dict:
    """Forward-only throughput of the full (untruncated) teacher, same batches."""
    from studentpack.model import adapter

    teacher = adapter.load_encoder(distiller.plan.teacher.path).eval()
    plan = BatchPlan(len(distiller.chunks.sequences), args.batch_size, 1, 0)

    @torch.inference_mode()
    def forward(i: int) -> None:
        ids, mask, _, _ = distiller._batch(plan, i)
        teacher(input_ids=ids, attention_mask=mask)

    times = time_steps(forward, args.steps, args.warmup)
    tokens = args.batch_size * 128
    return {"median_step_s": statistics.median(times), "tokens_per_s": tokens / statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="mha,hs,od")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-tuning", action="store_true", help="skip the numerics tuning (to measure its effect)")
    args = parser.parse_args()
    tuning = {} if args.no_tuning else tune_for_training()  # before torch's thread pool exists, as the CLI does
    torch.set_num_threads(args.threads)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        teacher = None
        for method in args.methods.split(","):
            results[method], distiller = bench_method(method, args, Path(tmp))
            if teacher is None:
                teacher = bench_teacher(distiller, args)
            print(f"{method}: {results[method]['tokens_per_s']:.0f} tok/s", flush=True)
    assert teacher is not None
    for method in args.methods.split(","):
        results[method]["ratio_to_teacher_forward"] = results[method]["tokens_per_s"] / teacher["tokens_per_s"]
    report = {
        "benchmark": "distill_throughput",
        "setting": {
            "teacher": "all-MiniLM-L6-v2 (packaged)",
            "student_layers": 3,
            "seq_len": 128,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "steps": args.steps,
            "warmup": args.warmup,
        },
        "cpu_tuning": tuning,
        "teacher_forward": teacher,
        "methods": results,
        "machine": {**machine(), "cpu_flags": cpu_flags()},
        "versions": package_versions(),
    }
    atomic.write_json(args.out, report)
    print(
        json.dumps(
            {
                "teacher_tok_s": round(teacher["tokens_per_s"]),
                **{m: round(r["ratio_to_teacher_forward"], 3) for m, r in results.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
