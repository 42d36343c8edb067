"""`studentpack loadtest`: drive a served model with locust at several concurrency levels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError

HELP = "load-test a served model with locust (p50/p95/p99, throughput, server batching)"
DESCRIPTION = """\
Send real texts to a served model at several concurrency levels and measure what a client sees.

Each level runs locust (FastHttpUser, closed loop, no think time) in a child process: a warm-up
(--warmup seconds, not counted), then a measured window that ends after --duration seconds or
--max-requests requests. Latency percentiles come from every request's exact time, not from
locust's rounded statistics. Around each level the server's /metrics is scraped (batch sizes,
queue and inference time). The load generator's own CPU use is recorded: on a small machine it
competes with the server, and a level where it saturated its core is flagged.

Targets: `studentpack serve` (/v1/embeddings, /v1/classify, OIP v2 infer; chosen from the model's
kind with --endpoint auto), any Open Inference Protocol v2 server (Triton; --endpoint infer), or an
OpenAI-style embeddings server (--endpoint embeddings --model NAME).

Texts come from --texts (a data file or directory as for `studentpack eval --data`, a text file,
or embedded:pydoc), --pool of them drawn with --seed; default: held-out prose that ships with
Python. --texts-per-request N sends N texts per request (multi-text requests).

A failed request (an error status, no answer, or a body without one result per text) is reported
and makes the command exit 1 unless --allow-failures.

examples:
  studentpack loadtest http://127.0.0.1:8000 --model mha-l3-int8 --users 1,4,16,32 --duration 30 \\
      --out runs/bench/mha-l3-int8
  studentpack loadtest http://127.0.0.1:8000/v2/models/teacher --users 1,8 --duration 10 \\
      --texts ../shared/data/sst2 --texts-per-request 4
  studentpack loadtest http://127.0.0.1:8001 --model my_model --endpoint infer     # a Triton server
"""


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 1,4,16,32") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: concurrency levels must be positive integers")
    return levels


def _cpus(text: str) -> tuple[int, ...]:
    from studentpack.ground.cpus import parse_cpu_list

    try:
        return parse_cpu_list(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="server URL: http://HOST:PORT, or http://HOST:PORT/v2/models/NAME")
    parser.add_argument("--model", help="served model name (default: from the URL, or the server's only model)")
    parser.add_argument(
        "--endpoint",
        choices=("auto", "embeddings", "infer", "classify"),
        default="auto",
        help="auto (default): /v1/embeddings or /v1/classify on studentpack serve, OIP infer elsewhere",
    )
    load = parser.add_argument_group("load")
    load.add_argument("--users", type=_levels, default=(1, 4, 16, 32), help="concurrency levels (default 1,4,16,32)")
    load.add_argument("--duration", type=float, default=30.0, help="measured seconds per level (default 30)")
    load.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each level (default 5)")
    load.add_argument("--max-requests", type=int, default=200_000, help="measured requests per level at most")
    load.add_argument("--timeout-s", type=float, default=60.0, help="per-request timeout (default 60)")
    load.add_argument(
        "--client-cpus", type=_cpus, default=(), metavar="IDS", help="pin the load generator to these CPUs (e.g. 3)"
    )
    texts = parser.add_argument_group("texts")
    texts.add_argument("--texts", metavar="SPEC", help="data file/dir or corpus (default: embedded held-out prose)")
    texts.add_argument("--text-column", help="column holding the text (default: text, sentence, or sentence1+2)")
    texts.add_argument("--pool", type=int, default=1000, help="distinct texts drawn (default 1000)")
    texts.add_argument("--texts-per-request", type=int, default=1, help="texts in each request (default 1)")
    texts.add_argument("--seed", type=int, default=0, help="seed for drawing the texts (default 0)")
    texts.add_argument(
        "--encoding", choices=("float", "base64"), default="float", help="/v1/embeddings encoding_format"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="DIR", help="write DIR/loadtest.json")
    out.add_argument("--model-dir", metavar="DIR", help="the local model directory being served (for reports)")
    out.add_argument("--label", help="free text stored with the results")
    out.add_argument("--allow-failures", action="store_true", help="exit 0 even when requests failed")
    out.add_argument("--json", dest="as_json", action="store_true", help="print the results as JSON on stdout")


def options_from(args: argparse.Namespace) -> Any:
    from studentpack.bench.loadtest import LoadtestOptions

    return LoadtestOptions(
        url=args.url,
        model=args.model,
        endpoint=args.endpoint,
        users=args.users,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_requests=args.max_requests,
        texts=args.texts,
        text_column=args.text_column,
        pool=args.pool,
        texts_per_request=args.texts_per_request,
        seed=args.seed,
        encoding=args.encoding,
        timeout_s=args.timeout_s,
        client_cpus=args.client_cpus,
        model_dir=args.model_dir,
        out=args.out,
        label=args.label,
    )


def run(args: argparse.Namespace) -> int:
    from studentpack.bench.loadtest import run_loadtest

    options = options_from(args)
    if args.model_dir and not Path(args.model_dir).is_dir():
        raise UserError(f"--model-dir {args.model_dir} is not a directory")
    result = run_loadtest(options, log=lambda line: print(f"studentpack loadtest: {line}", file=sys.stderr, flush=True))
    if args.as_json:
        print(json.dumps(result))
    for note in result["notes"]:
        print(f"studentpack loadtest: note: {note}", file=sys.stderr)
    if "saved_to" in result:
        print(f"studentpack loadtest: results saved to {result['saved_to']}", file=sys.stderr)
    if result["failures"] and not args.allow_failures:
        print(
            f"studentpack loadtest: error: {result['failures']} request(s) failed "
            "(see failures_by_status; --allow-failures to accept)",
            file=sys.stderr,
        )
        return 1
    return 0
