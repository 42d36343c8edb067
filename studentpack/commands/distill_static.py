"""`studentpack distill --method static`: its flags and its run (the transformer methods' are in distill.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_static_arguments(parser: argparse.ArgumentParser, s: Any) -> None:
    """The static student's flags; `s` is the verb's "not given" default (so config files can set them)."""
    static = parser.add_argument_group("static student (--method static only)")
    static.add_argument(
        "--static-dim",
        type=int,
        default=s,
        help="PCA width of the token vectors (default 256; the teacher's width when that is smaller)",
    )
    static.add_argument(
        "--static-sif",
        type=float,
        default=s,
        help="SIF coefficient a: rows weighted a / (a + p), p the Zipf estimate of the token's probability "
        "from its vocabulary rank (default 1e-4; 0 turns the weighting off)",
    )
    static.add_argument(
        "--static-steps",
        type=int,
        default=s,
        help="Adam steps training the table on --corpus against the teacher's sentence embeddings "
        "(Model2Vec's tokenlearn idea; default 300; 0: plain distillation, the corpus unread)",
    )


def run_static_command(args: argparse.Namespace, config: Any) -> int:
    """`studentpack distill --method static`: plan, distil the table into the run directory, summarise."""
    from studentpack.distill.rundir import RunDir, check_fresh
    from studentpack.distill.static_run import default_out, plan_static, run_static

    plan = plan_static(config)  # every cheap check, before --out is touched
    run_dir = RunDir(Path(args.out or default_out(config)))
    check_fresh(run_dir, args.overwrite)
    manifest = run_static(plan, run_dir, progress=not args.quiet)
    vocabulary, training = manifest["vocabulary"], manifest["training"]
    lines = [
        f"student: {run_dir.student}",
        f"  static: {manifest['student']['vocabulary']:,} tokens x {manifest['student']['hidden']} "
        f"(PCA keeps {vocabulary['explained_variance']:.1%} of the variance), SIF {vocabulary['sif']:g}, "
        f"{manifest['distill_seconds']:.1f} s",
    ]
    if training:
        lines.append(
            f"  trained {training['steps']} steps on {training['lines']:,} lines ({training['tokens']:,} tokens): "
            f"loss {training['initial_loss']:.4f} -> {training['final_loss']:.4f}"
        )
    from studentpack.commands.distill import quote_path

    model = quote_path(run_dir.student)
    lines += [f"next: studentpack eval {model} --task stsb --data PATH/TO/stsb/dev.tsv",
              f"next: studentpack serve {model}"]  # fmt: skip
    print("\n".join(lines))
    return 0
