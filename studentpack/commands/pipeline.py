"""`studentpack pipeline`: teacher to a served, measured student in one command."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "all of it in one command: distill -> eval -> export -> serve -> loadtest -> report"
DESCRIPTION = """\
Distil students from a teacher, evaluate them, export them, serve them next to the teacher's
PyTorch baseline, load-test every served model, score each one through its endpoint, and write
a report of accuracy against served latency (report.md, report.json, pareto.png).

With no arguments it runs the quick preset on what ships with the install: the packaged
all-MiniLM-L6-v2 as teacher, three 3-layer students (MHA, HS, OD; 100 steps each on English text
from the Python distribution), fp32 and INT8 variants of each and of the teacher, load tests at
concurrency 1 and 8, and agreement with the teacher as the accuracy measure (no labels needed).
It takes about 10 minutes on a 2-core CPU.

Stages and their artifacts stay under --out (default runs/pipeline). Running it again skips every
unit whose artifact is complete and whose inputs are unchanged (--force redoes all); a distillation
that was interrupted continues from its last checkpoint. A student that fails is reported and the
others carry on; the command then exits 1 after writing the report.

Labelled data: --data DIR names a directory holding stsb/ and/or sst2/, each with train.* and
dev.* files (TSV with a header: stsb sentence1, sentence2, score; sst2 sentence, label). The
report then scores STS-B zero-shot (Spearman) and an SST-2 linear probe (accuracy) instead of
agreement. In this repository's development checkout that is ../shared/data.

examples:
  studentpack pipeline                                            # quick preset, CPU
  studentpack pipeline --data ../shared/data --out runs/quick-labelled
  studentpack pipeline --config examples/full.yaml --set data=../shared/data
  studentpack pipeline --set steps=300 --set loadtest.users=[1,4,16,32] --set loadtest.duration_s=20
  studentpack pipeline --device cuda --out runs/gpu                 # GPU leg: fp16 variants, CUDA provider
  studentpack pipeline --print-config                               # every setting, as the run would use it
"""

_FLAGS = ("out", "data", "device", "teacher", "steps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML/TOML/JSON file with pipeline settings (see --print-config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    parser.add_argument("--out", help="directory for every artifact (default runs/pipeline)")
    parser.add_argument("--data", help="directory holding stsb/ and sst2/ (labelled eval data)")
    parser.add_argument("--device", help="cpu (default) or cuda; cuda without a usable GPU is an error")
    parser.add_argument("--teacher", help="teacher directory or hub id (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--corpus", action="append", help="distillation corpus (repeatable; default: embedded)")
    parser.add_argument("--steps", type=int, help="distillation steps of every student (default 100)")
    parser.add_argument("--force", action="store_true", help="redo every stage, even those already complete")
    parser.add_argument(
        "--print-config", action="store_true", help="check and print the resolved settings, then exit (no work)"
    )


def resolve_config(args: argparse.Namespace) -> Any:
    from studentpack.bench.pipeline_config import PipelineConfig
    from studentpack.config import apply_sets, build, load_file

    data: dict[str, Any] = load_file(args.config) if args.config else {}
    for flag in _FLAGS:
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    if args.corpus:
        data["corpus"] = list(args.corpus)
    data = apply_sets(data, args.set)
    return build(PipelineConfig, data)


def run(args: argparse.Namespace) -> int:
    from studentpack.bench.pipeline import check_config, config_json, run_pipeline

    cfg = resolve_config(args)
    if args.print_config:
        check_config(cfg)
        print(config_json(cfg))
        return 0
    outcome = run_pipeline(cfg, force=args.force)
    say = lambda line: print(f"studentpack pipeline: {line}", file=sys.stderr)  # noqa: E731
    minutes = outcome.seconds / 60
    say(f"finished in {minutes:.1f} min; artifacts under {cfg.out}")
    report = outcome.report
    if report is not None:
        for device, headline in report["headline"].items():
            if headline:
                speed = f"{headline['speedup_p50']:.2f}x" if headline.get("speedup_p50") else "n/a"
                print(
                    f"{device}: best student {headline['row']}: {headline['score_pct_of_teacher']:.1f}% of the "
                    f"teacher, served p50 {headline['p50_ms']:.2f} ms vs baseline "
                    f"{headline['baseline_p50_ms'] or float('nan'):.2f} ms ({speed} faster)"
                )
        print(f"report: {cfg.out}/report/report.md (and pareto.png, report.json)")
    for note in outcome.notes:
        say(f"note: {note}")
    for unit, reason in outcome.failures.items():
        say(f"failed: {unit}: {reason}")
    return 1 if outcome.failures else 0
