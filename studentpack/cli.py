"""The `studentpack` command line.

Each verb lives in `studentpack/commands/<verb>.py` with `add_arguments(parser)` and `run(args)`.
Those modules import torch, transformers and onnxruntime only inside `run`, so `--help` stays fast
and works on a machine where the heavy stack is broken.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from studentpack import __version__
from studentpack.ground.errors import UserError
from studentpack.ground.extras import EXTRA_OF_MODULE, missing_extra_message

# verb -> module under studentpack.commands; the order is the order shown in --help
VERBS: dict[str, str] = {
    "distill": "distill",
    "eval": "evaluate",
    "export": "export",
    "serve": "serve",
    "loadtest": "loadtest",
    "report": "report",
    "pipeline": "pipeline",
}

DESCRIPTION = """\
Turn a large Transformer encoder into small, fast, deployable students.

  distill   train a student from a teacher (OD, HS or MHA transfer)
  eval      score a model on STS-B, SST-2 or agreement with its teacher
  export    write ONNX variants (fp32, fused, int8, fp16), each gated on parity/accuracy
  serve     serve models over HTTP (Open Inference Protocol v2, /v1/embeddings)
  loadtest  load-test a served model with locust: latency percentiles, throughput
  report    accuracy against served latency across students and variants: table + Pareto plot
  pipeline  all of the above in one command: distill -> eval -> export -> serve -> loadtest -> report

Run `studentpack <verb> --help` for the options of each verb.
"""


def _load(verb: str) -> ModuleType:
    return importlib.import_module(f"studentpack.commands.{VERBS[verb]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studentpack",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"studentpack {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="<verb>")
    for verb in VERBS:
        module = _load(verb)
        verb_parser = sub.add_parser(
            verb,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Large tensors (relation matrices, batched activations) on transparent huge pages: fewer page
    # faults per allocation; torch reads this once, before its first allocation.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except UserError as exc:
        print(f"studentpack {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in EXTRA_OF_MODULE:
            raise
        print(f"studentpack {args.verb}: error: {missing_extra_message(missing)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"studentpack {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
