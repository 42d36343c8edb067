"""`studentpack report`: accuracy against served latency, across students, variants and devices."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "accuracy against served latency across students and variants: table + Pareto plot"
DESCRIPTION = """\
Collect what earlier steps wrote under the given directories (studentpack.json, eval.json,
export.json, loadtest.json) and write, under --out:

  report.md    one row per model x variant x device: parameters, size, method and layer map, each
               accuracy metric and (labelled ones) its % of the teacher, served p50/p95/p99 at
               concurrency 1, best throughput and where it was reached, speed-ups against the
               baseline; frontier rows ★; a headline naming the CPU class the speed-up was measured on
  report.json  the same, machine-readable
  pareto.svg   the score against served p50 latency, frontier drawn; one panel per device

The score: with labelled results (STS-B, SST-2), the mean % of the teacher; without, the label-free
recall@10 of the teacher's nearest neighbours on held-out English, whose target is the recall that
BENCHMARKS.md ties to 97% of the teacher on labelled data. Rows are compared at one concurrency
level (the baseline's).

Files are tied together by content hash (the hash `studentpack serve` reports for each model), so
results stay attached to the right model however directories are named. Accuracy comes from
evaluations through the served endpoint (`studentpack eval http://.../v2/models/NAME`) where there
are any; a local evaluation is used otherwise and marked "(local)". The baseline is the teacher's
PyTorch directory load-tested on the same server (`studentpack serve default ...`).

examples:
  studentpack report runs/ --out runs/report
  studentpack report runs/mha-l3 runs/hs-l3 runs/bench --out /tmp/report
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("roots", nargs="+", type=Path, metavar="DIR", help="directories to collect results from")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <first DIR>/report)")


def run(args: argparse.Namespace) -> int:
    from studentpack.bench.markdown import headline_sentence
    from studentpack.bench.plot import PLOT_FILE
    from studentpack.bench.report import write_report

    out = args.out or args.roots[0] / "report"
    report = write_report(list(args.roots), out)
    for device, headline in report["headline"].items():
        if headline:
            print(f"{device}: {headline_sentence(headline, bold=False)}")
    print(
        f"studentpack report: {len(report['rows'])} rows -> {out}/report.md, report.json, {PLOT_FILE}", file=sys.stderr
    )
    return 0
