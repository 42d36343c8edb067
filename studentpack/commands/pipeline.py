"""`studentpack pipeline`: teacher to a served, measured student in one command."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "all of it in one command: distill -> eval -> export -> serve -> loadtest -> report"
DESCRIPTION = """\
Distil students from a teacher, evaluate them, export them, serve them next to the teacher's
PyTorch baseline, load-test every served model, score each one through its endpoint, and write
a report of accuracy against served latency (report.md, report.json, pareto.svg).

With no arguments it runs the quick preset on what ships with the install, within a time budget
(--budget-minutes, default 12) on a 2-core CPU of any class:
  - first it times the teacher here for a few seconds and sizes the run to the budget; the plan
    (the timing, the steps each student gets, and why) goes into pipeline.json and the report;
  - hs-l3: the student `studentpack distill` makes on its defaults (HS transfer, sentences packed in
    isolation, the full recipe), never cut by the budget: the one worth deploying;
  - hs-l2 (the same recipe on 2 layers), then mha-l3 and od-l3 (the paper's other transfers), at the
    steps the budget leaves, or left out (and said so) when it leaves none;
  - the teacher and each student exported to the CPU candidates (fp32, fused, int8-dynamic, OpenVINO
    int8 and OpenVINO fp32, or bf16 on CPUs with BF16), gated, timed here, and served in the variant
    that ran fastest on one text at a time (a student of the same shape as one already timed, as
    mha-l3 and od-l3 are to hs-l3, takes that model's choice without a trial of its own);
  - load tests at concurrency 1 and 8, and, without labelled data, a label-free score: how many of
    the teacher's 10 nearest neighbours each student retrieves among 1,000 held-out English
    sentences (recall@10). The headline's threshold on it is the recall that BENCHMARKS.md ties to
    97% of the teacher on labelled STS-B and SST-2.

Stages and their artifacts stay under --out (default runs/pipeline). Running it again skips every
unit whose artifact is complete and whose inputs are unchanged (--force redoes all); a distillation
that was interrupted continues from its last checkpoint. A student that fails is reported and the
others carry on; the command then exits 1 after writing the report.

Labelled data: --data DIR names a directory holding stsb/ and/or sst2/, each with train.* and
dev.* files (TSV with a header: stsb sentence1, sentence2, score; sst2 sentence, label). The
report then scores STS-B zero-shot (Spearman) and an SST-2 linear probe (accuracy) as % of the
teacher. In this repository's development checkout that is ../shared/data.

examples:
  studentpack pipeline                                            # quick preset, CPU
  studentpack pipeline --data ../shared/data --out runs/quick-labelled
  studentpack pipeline --budget-minutes 30                        # more steps for the comparison students
  studentpack pipeline --set budget_minutes=null                  # no budget: every student its full steps
  studentpack pipeline --config examples/full.yaml --set data=../shared/data
  studentpack pipeline --set loadtest.users=[1,4,16,32] --set loadtest.duration_s=20
  studentpack pipeline --device cuda --out runs/gpu                 # GPU leg: fp16 variants, CUDA provider
  studentpack pipeline --print-config                               # every setting, as the run would use it
"""

_FLAGS = ("out", "data", "device", "teacher", "steps", "budget_minutes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML/TOML/JSON file with pipeline settings (see --print-config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    parser.add_argument("--out", help="directory for every artifact (default runs/pipeline)")
    parser.add_argument("--data", help="directory holding stsb/ and sst2/ (labelled eval data)")
    parser.add_argument("--device", help="cpu (default) or cuda; cuda without a usable GPU is an error")
    parser.add_argument("--teacher", help="teacher directory or hub id (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--corpus", action="append", help="distillation corpus (repeatable; default: embedded)")
    parser.add_argument(
        "--steps", type=int, help="distillation steps of every student without its own (default: distill's default)"
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        help="the run's target wall time here; budgeted students are sized to it (default 12)",
    )
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
        from studentpack.bench.markdown import headline_sentence
        from studentpack.bench.plot import PLOT_FILE

        for device, headline in report["headline"].items():
            if headline:
                print(f"{device}: {headline_sentence(headline, bold=False)}")
        print(f"report: {cfg.out}/report/report.md (and {PLOT_FILE}, report.json)")
    for note in outcome.notes:
        say(f"note: {note}")
    for unit, reason in outcome.failures.items():
        say(f"failed: {unit}: {reason}")
    return 1 if outcome.failures else 0
