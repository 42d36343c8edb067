"""`studentpack serve`: serve exported variants (and PyTorch baselines) over HTTP, side by side."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError

HELP = "serve models over HTTP (Open Inference Protocol v2, /v1/embeddings, /v1/classify)"
DESCRIPTION = """\
Serve exported ONNX variants (and plain PyTorch model directories, for baselines) side by side,
with dynamic batching, limits, Prometheus metrics and graceful shutdown.

Models are given as PATH or NAME=PATH (PATH `default`: the packaged all-MiniLM-L6-v2 in PyTorch, the
usual baseline). Without a name, a model is named after its directory; when
two directories share a name (runs/a/onnx/int8, runs/b/onnx/int8), parent directories are added
until names differ ("a-int8", "b-int8"; an "onnx" level is skipped). Requests name a model; only
these names exist.

Endpoints:
  GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready
  POST /v2/models/NAME/infer     OIP v2: BYTES input "text" -> FP32 "embedding" or "logits"
  POST /v1/embeddings            {"model": NAME, "input": str | [str]} (OpenAI shape)
  POST /v1/classify              {"model": NAME, "input": str | [str] | [[a, b]]}
  GET  /v1/models, /metrics

Examples:
  studentpack serve runs/mha-l3/onnx/int8-dynamic runs/hs-l3/onnx/int8-dynamic teacher=default \\
      --host 127.0.0.1 --port 8000 --max-batch 32 --max-wait-ms 5
  studentpack serve runs/mha-l3/onnx/fp16 --device cuda --api-key-file key.txt

The API key (Authorization: Bearer KEY) comes from --api-key-file or $STUDENTPACK_API_KEY; health
checks stay open. SIGTERM drains: readiness turns 503, in-flight requests finish (up to --grace-s),
exit 0.
"""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# flag -> ServeConfig field; flags default to None so --config/--set values stand unless a flag is given
_FLAGS: dict[str, tuple[str, type, str]] = {
    "--host": ("host", str, "address to bind (default 127.0.0.1: this machine only)"),
    "--port": ("port", int, "port (default 8000; 0 picks a free one and prints it)"),
    "--device": ("device", str, "cpu (default), cuda or cuda:N; cuda refuses to start on a CPU fallback"),
    "--threads": ("threads", int, "intra-op threads per model (default: the runtime's choice)"),
    "--max-length": ("max_length", int, "tokens per text, capped at the model's maximum (default 128)"),
    "--max-batch": ("max_batch", int, "texts per batch (default 32)"),
    "--max-batch-tokens": ("max_batch_tokens", int, "padded tokens per batch (default max-batch x max-length)"),
    "--max-wait-ms": ("max_wait_ms", float, "longest wait for companions under concurrent load (default 5)"),
    "--max-gap-ms": ("max_gap_ms", float, "stop waiting once no request has arrived for this long (default 1)"),
    "--split-cost-tokens": (
        "split_cost_tokens",
        int,
        "run a mixed-length batch as length-sorted sub-batches when padding costs more than this many "
        "tokens per extra call; 0: never split (default: 64 on CPU, off on GPU)",
    ),
    "--batch-dependent": (
        "batch_dependent",
        str,
        "a model whose vectors change with their batch-mates (ONNX Runtime's int8-dynamic): per-text (default) "
        "runs it one text per call, so a text always gets the same vector; batch batches it anyway; refuse "
        "does not serve it",
    ),
    "--max-queue": ("max_queue", int, "queued texts per model before 503 (default 1024)"),
    "--max-inputs": ("max_inputs", int, "texts per request (default 256)"),
    "--max-body-bytes": ("max_body_bytes", int, "request body limit (default 2 MiB)"),
    "--timeout-s": ("request_timeout_s", float, "a request still queued after this gets 503, not run (default 30)"),
    "--grace-s": ("grace_s", float, "SIGTERM: time for in-flight requests to finish (default 30)"),
    "--log-level": ("log_level", str, "critical, error, warning, info (default) or debug"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="[NAME=]PATH", help="exported variant dir or HF model dir")
    for flag, (field, kind, text) in _FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, default=None, help=text)
    parser.add_argument("--access-log", dest="access_log", action="store_true", default=None, help="log every request")
    parser.add_argument(
        "--spin",
        dest="spin",
        action="store_true",
        default=None,
        help="let idle onnxruntime threads busy-wait between batches (only with cores to spare)",
    )
    parser.add_argument(
        "--keep-memory",
        dest="keep_memory",
        action="store_true",
        default=None,
        help="keep onnxruntime's memory at the largest batch's peak instead of returning it after each batch "
        "(a little faster on large batches; resident memory stays high)",
    )
    parser.add_argument("--api-key-file", help="require `Authorization: Bearer <first line of this file>`")
    parser.add_argument(
        "--force",
        action="store_true",
        help="serve variants whose export gate failed (rejected/) or that were quantized for another CPU",
    )
    parser.add_argument(
        "--cpus", metavar="IDS", help="pin the server to these CPUs (e.g. 0-2), leaving others to a load generator"
    )
    parser.add_argument("--config", help="a YAML/TOML/JSON file of the options above (keys as in ServeConfig)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")


def model_names(specs: list[str]) -> dict[str, Path]:
    """`[NAME=]PATH` arguments -> {name: path}, names unique and URL-safe."""
    named: list[tuple[str | None, Path]] = []
    for spec in specs:
        head, sep, rest = spec.partition("=")
        if sep and NAME_RE.match(head):
            named.append((head, Path(rest).expanduser()))
        elif sep and "/" not in head and head:
            raise UserError(f"model name {head!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        else:
            named.append((None, Path(spec).expanduser()))
    unnamed = [path for name, path in named if name is None]
    derived = _derived_names(unnamed)
    out: dict[str, Path] = {}
    for given, path in named:
        final = given if given is not None else derived[path]
        if final in out:
            raise UserError(f"two models are named {final!r}; name them with NAME=PATH")
        out[final] = path
    return out


def _derived_names(paths: list[Path]) -> dict[Path, str]:
    """Each path's shortest distinguishing tail of directory names ('onnx' levels skipped), joined by '-'."""
    parts = {p: [x for x in reversed(p.resolve().parts[1:]) if x != "onnx"] or ["model"] for p in paths}
    names: dict[Path, str] = {}
    for path, tail in parts.items():
        for depth in range(1, len(tail) + 1):
            name = "-".join(reversed(tail[:depth]))
            others = ["-".join(reversed(t[:depth])) for q, t in parts.items() if q != path]
            if name not in others:
                break
        clean = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")[:64] or "model"
        names[path] = clean
    return names


def _packaged_if_default(path: Path) -> Path:
    """`default` (when no such directory exists here) is the packaged teacher: the usual PyTorch baseline."""
    if str(path) == "default" and not path.exists():
        from studentpack.text.sources import packaged_teacher_dir

        return packaged_teacher_dir()
    return path


def _config(args: argparse.Namespace) -> Any:
    from studentpack.config import apply_sets, build, load_file
    from studentpack.serving.config import ServeConfig

    data = load_file(args.config) if args.config else {}
    data = apply_sets(data, args.set)
    fields = [field for field, _, _ in _FLAGS.values()] + ["access_log", "spin", "keep_memory"]
    data.update({f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    return build(ServeConfig, data)


def _check_device(device: str, paths: list[Path]) -> None:
    """Refuse CUDA before binding when the runtimes cannot see one (the load re-checks each session)."""
    if not device.startswith("cuda"):
        return
    from studentpack.engines.graph import graph_file
    from studentpack.engines.openvino import check_device as check_openvino_device
    from studentpack.engines.static import check_cpu, is_static_model
    from studentpack.ground.cuda import require_ort_cuda, require_torch_cuda

    static = [p for p in paths if is_static_model(p)]
    for path in static:
        check_cpu(device, path)
    paths = [p for p in paths if p not in static]
    for path in paths:
        graph = graph_file(path)
        if graph is not None and graph.name == "model.xml":
            check_openvino_device(device)
    if any((p / "model.onnx").is_file() for p in paths):
        require_ort_cuda(device)
    if any(graph_file(p) is None for p in paths):
        require_torch_cuda(device, "--device")


def run(args: argparse.Namespace) -> int:
    import functools
    import logging

    from studentpack.serving.app import create_app
    from studentpack.serving.auth import load_api_key
    from studentpack.serving.backends import check_model_dir, load_backend
    from studentpack.serving.runner import bind, serve

    config = _config(args)
    if args.cpus:
        from studentpack.ground.cpus import parse_cpu_list, pin_process

        pin_process(parse_cpu_list(args.cpus), "--cpus")  # before any runtime starts its threads
    models = {name: _packaged_if_default(path) for name, path in model_names(args.models).items()}
    for path in models.values():
        check_model_dir(path, args.force, config.max_length)
    api_key = load_api_key(args.api_key_file)
    _check_device(config.device, list(models.values()))
    if not config.keep_memory:
        from studentpack.ground.memory import return_freed_memory

        return_freed_memory()  # before the runtimes allocate anything
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s:     %(message)s")
    loaders = {
        name: functools.partial(
            load_backend,
            path,
            config.device,
            config.max_length,
            config.threads,
            config.spin,
            args.force,
            config.max_batch,
            not config.keep_memory,
        )
        for name, path in models.items()
    }
    if api_key is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("studentpack.serve").warning(
            "listening on %s without an API key: anyone who can reach this port can use the models", config.host
        )
    app = create_app(loaders, config, api_key=api_key)
    sock = bind(config.host, config.port)
    serve(app, config, sock)
    error = app.state.lifecycle.error
    if error:
        raise UserError(error)
    return 0
