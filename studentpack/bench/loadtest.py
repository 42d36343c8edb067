"""`run_loadtest(options)`: drive one served model at several concurrency levels and record what happened.

For each level a locust child process (`locust_worker`) runs closed-loop users for a warm-up and
then a measured window; this process scrapes the server's /metrics around it, turns the exact
per-request latencies into percentiles and writes one JSON document (`loadtest.json`).

Targets: `studentpack serve` (all three endpoints) and any server speaking the same protocols:
another Open Inference Protocol v2 server (Triton: `infer`) or an OpenAI-style embeddings server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from studentpack.bench import server_metrics
from studentpack.bench.texts import RequestTexts, load_request_texts
from studentpack.engines.remote import oip_server_facts
from studentpack.ground import atomic
from studentpack.ground.errors import UserError

SCHEMA = "studentpack.loadtest/1"
RESULT_FILE = "loadtest.json"
Endpoint = Literal["auto", "embeddings", "infer", "classify"]
ENDPOINTS = ("auto", "embeddings", "infer", "classify")
SATURATED_CORES = 0.9  # the worker is one gevent thread: near one core of CPU time, it is the bottleneck
_BODIES = 512  # distinct request bodies cycled through by the users


@dataclass(frozen=True)
class LoadtestOptions:
    url: str
    model: str | None = None  # default: from the URL (/v2/models/NAME), else the server's only model
    endpoint: Endpoint = "auto"  # auto: /v1/embeddings or /v1/classify on our server, OIP infer elsewhere
    users: tuple[int, ...] = (1, 4, 16, 32)
    duration_s: float = 30.0  # measured seconds per level (after the warm-up)
    warmup_s: float = 5.0
    max_requests: int = 200_000  # measured requests per level: the other bound
    texts: str | None = None  # data file/dir or corpus spec (default: embedded held-out prose)
    text_column: str | None = None
    pool: int = 1000  # distinct texts drawn from `texts`
    texts_per_request: int = 1
    seed: int = 0
    encoding: Literal["float", "base64"] = "float"  # /v1/embeddings encoding_format
    timeout_s: float = 60.0
    client_cpus: tuple[int, ...] = ()  # pin the load generator to these CPU ids
    api_key: str | None = None  # default: $STUDENTPACK_API_KEY
    model_dir: str | None = None  # the local directory being served, recorded for reports
    out: str | None = None  # directory for loadtest.json
    label: str | None = None  # free text recorded with the results

    def __post_init__(self) -> None:
        if not self.users or any(u < 1 for u in self.users):
            raise UserError("--users: give one or more positive concurrency levels, e.g. 1,4,16,32")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise UserError("--duration must be positive and --warmup not negative")
        if self.max_requests < 1 or self.pool < 1 or self.texts_per_request < 1:
            raise UserError("--max-requests, --pool and --texts-per-request must be at least 1")
        if self.endpoint not in ENDPOINTS:
            raise UserError(f"--endpoint {self.endpoint!r}: choose from {', '.join(ENDPOINTS)}")
        if self.client_cpus:
            from studentpack.ground.cpus import check_cpus

            check_cpus(self.client_cpus, "--client-cpus")


@dataclass
class Target:
    """What the load test learned about the endpoint before sending load."""

    base: str
    model: str
    endpoint: str  # embeddings | infer | classify
    path: str
    server: str  # studentpack, another OIP server by its own name (GET /v2: "triton"), oip, or unknown
    info: dict[str, Any] = field(default_factory=dict)  # kind, dim, device, providers, sha256, ...
    oip_shape: str = "n"  # "n" ([N]) or "n1" ([N, 1], Triton models with a batch dimension)


# ------------------------------------------------------------------------------------------- discovery


def discover(options: LoadtestOptions, client: httpx.Client, base: str, model: str | None) -> Target:
    """Which model, which endpoint, and what the server says about it; a clear error if it is not there."""
    ready = _get(client, "/v2/health/ready")
    listing = _get(client, "/v1/models")
    models = _listed_models(listing)
    # our own server marks its entries (owned_by studentpack, with a state); TEI, vLLM, Infinity and OpenAI
    # list models in the OpenAI shape without either: those are measured as foreign servers
    ours = bool(models) and all(m.get("owned_by") == "studentpack" and "state" in m for m in models.values())
    if ready is not None and ready.status_code == 503:  # other codes: a server without OIP health routes
        raise UserError(f"{base} is not ready (GET /v2/health/ready answered 503)")
    if models and model is None:
        if len(models) != 1:
            raise UserError(f"{base} serves {len(models)} models ({', '.join(map(str, models))}); pick one: --model")
        model = next(iter(models))
    if models and model not in models:
        raise UserError(f"{base} serves no model {model!r} (it serves: {', '.join(map(str, models))})")
    if model is None:
        raise UserError(f"{base} does not list its models (no /v1/models): name one with --model")
    info: dict[str, Any] = dict(models.get(model) or {})
    if ours and info.get("state") != "ready":
        raise UserError(f"model {model} at {base} is not ready ({info.get('state')})")
    endpoint = options.endpoint
    if endpoint == "auto":
        if ours:
            endpoint = "classify" if info.get("kind") == "classifier" else "embeddings"
        else:  # an OpenAI-style listing means /v1/embeddings; no listing, an OIP server
            endpoint = "embeddings" if models else "infer"
    server = "studentpack" if ours else ("openai-compatible" if models else "unknown")
    target = Target(base, model, endpoint, _path(endpoint, model), server, info)
    if endpoint == "infer":
        _oip_metadata(client, target)
    if ours and endpoint != "infer" and (info.get("kind") == "classifier") != (endpoint == "classify"):
        raise UserError(f"model {model} is a{'' if endpoint == 'classify' else 'n'} {info.get('kind')} model; "
                        f"--endpoint {'embeddings' if endpoint == 'classify' else 'classify'} fits it")  # fmt: skip
    return target


def _listed_models(listing: httpx.Response | None) -> dict[str, dict[str, Any]]:
    """GET /v1/models in the OpenAI shape ({"object": "list", "data": [{"id": ...}]}) -> {id: entry}."""
    if listing is None or listing.status_code != 200:
        return {}
    data = _json(listing).get("data")
    entries = data if isinstance(data, list) else []
    return {str(m["id"]): m for m in entries if isinstance(m, dict) and m.get("id") is not None}


def _oip_metadata(client: httpx.Client, target: Target) -> None:
    response = _get(client, f"/v2/models/{target.model}")
    if response is None or response.status_code != 200:
        status = "no answer" if response is None else f"HTTP {response.status_code}"
        raise UserError(f"{target.base}/v2/models/{target.model}: {status}; is the model served there?")
    meta = _json(response)
    if target.server == "unknown":
        facts = oip_server_facts(client, target.model)
        target.server = facts.pop("server")
        target.info = {"platform": meta.get("platform"), "versions": meta.get("versions")}
        target.info.update(facts)
    inputs = meta.get("inputs") or []
    if inputs and isinstance(inputs[0], dict) and len(inputs[0].get("shape") or []) == 2:
        target.oip_shape = "n1"  # a batching Triton model: [N, 1] BYTES


def _path(endpoint: str, model: str) -> str:
    return {"embeddings": "/v1/embeddings", "classify": "/v1/classify"}.get(endpoint, f"/v2/models/{model}/infer")


def _get(client: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return client.get(path)
    except httpx.ConnectError as exc:
        raise UserError(f"cannot reach {client.base_url}: {exc}") from exc
    except httpx.HTTPError:
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ------------------------------------------------------------------------------------------- requests


def request_bodies(target: Target, texts: list[str], per_request: int, encoding: str) -> tuple[list[str], list[int]]:
    """JSON bodies of `per_request` texts each, walking the pool; and how many texts each carries."""
    bodies, rows = [], []
    count = max(1, min(_BODIES, len(texts)))
    for i in range(count):
        chunk = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
        bodies.append(json.dumps(_body(target, chunk, encoding)))
        rows.append(len(chunk))
    return bodies, rows


def _body(target: Target, chunk: list[str], encoding: str) -> dict[str, Any]:
    if target.endpoint == "infer":
        shape = [len(chunk), 1] if target.oip_shape == "n1" else [len(chunk)]
        return {"inputs": [{"name": "text", "shape": shape, "datatype": "BYTES", "data": chunk}]}
    payload: dict[str, Any] = {"model": target.model, "input": chunk[0] if len(chunk) == 1 else chunk}
    if target.endpoint == "embeddings":
        payload["encoding_format"] = encoding
    return payload


# ------------------------------------------------------------------------------------------- one level


def run_level(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run the locust worker for one level; its raw records and window."""
    with tempfile.TemporaryDirectory(prefix="studentpack-loadtest-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "studentpack.bench.locust_worker", str(spec_path), str(out_path)]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise UserError(f"the load generator did not finish within {timeout_s:.0f} s") from exc
        if done.returncode != 0 or not out_path.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"the load generator (locust) failed: {tail}")
        return json.loads(out_path.read_text(encoding="utf-8"))


def summarize(raw: dict[str, Any], rows: float, machine_cores: int) -> dict[str, Any]:
    """Percentiles and rates over the measured window (answers that arrived during the warm-up counted apart).

    `raw["records"]` rows: [start offset s, latency ms, HTTP status, ok, error]; `raw["window"]`: [start, end] s."""
    start, end = raw["window"]
    window = max(end - start, 1e-9)
    # a window counts the answers that arrived in it (a request may have left before it opened): counting
    # only requests that started and finished inside would miss about latency / window of the throughput
    measured = [r for r in raw["records"] if r[0] + r[1] / 1e3 >= start]
    ok = np.array([r[1] for r in measured if r[3]], dtype=np.float64)  # (N,) ms
    failed = [r for r in measured if not r[3]]
    by_status = Counter(str(r[2]) if r[2] else "no response" for r in failed)
    reasons = Counter(r[4] for r in failed)
    cores = raw["cpu_seconds"] / window
    latency = None
    if ok.size:
        p50, p95, p99 = np.percentile(ok, [50, 95, 99])
        latency = {
            "p50": round(float(p50), 3),
            "p95": round(float(p95), 3),
            "p99": round(float(p99), 3),
            "max": round(float(ok.max()), 3),
            "mean": round(float(ok.mean()), 3),
        }
    return {
        "requests": len(measured),
        "ok": int(ok.size),
        "failures": len(failed),
        "failures_by_status": dict(by_status),
        "failure_examples": [reason for reason, _ in reasons.most_common(3)],
        "warmup_requests": len(raw["records"]) - len(measured),
        "seconds": round(window, 3),
        "stopped_by": raw["stopped_by"],
        "requests_per_s": round(ok.size / window, 3),  # answered requests only: a failure is not throughput
        "texts_per_s": round(ok.size * rows / window, 3),
        "latency_ms": latency,
        "client_cpu": {
            "cores_used": round(cores, 3),
            "saturated": cores >= SATURATED_CORES,
            "machine_cores": machine_cores,
        },
    }


def progress_line(level: dict[str, Any]) -> str:
    lat = level["latency_ms"]
    shown = f"p50 {lat['p50']:.2f} p95 {lat['p95']:.2f} p99 {lat['p99']:.2f} ms" if lat else "no successful request"
    server = level.get("server") or {}
    batch = f" | batch {server['mean_batch_size']:.1f}" if server.get("mean_batch_size") else ""
    cpu = level["client_cpu"]
    flag = " SATURATED" if cpu["saturated"] else ""
    return (
        f"users {level['users']:>3} | {level['requests']} requests, {level['failures']} failed | "
        f"{level['requests_per_s']:.1f} req/s, {level['texts_per_s']:.1f} texts/s | {shown}{batch} | "
        f"client CPU {100 * cpu['cores_used']:.0f}%{flag}"
    )


# ------------------------------------------------------------------------------------------- the run


def run_loadtest(options: LoadtestOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every level in order; the results document (also written to `<out>/loadtest.json` when `out`)."""
    from studentpack.engines.remote import parse_url
    from studentpack.ground.protocol import API_KEY_ENV
    from studentpack.ground.provenance import machine_facts

    require_locust()
    out_dir = Path(options.out).expanduser() if options.out else None
    if out_dir is not None:
        atomic.check_writable_dir(out_dir)
    base, url_model = parse_url(options.url)
    model = options.model or url_model
    texts = load_request_texts(options.texts, options.pool, options.seed, options.text_column)
    key = options.api_key or os.environ.get(API_KEY_ENV, "").strip() or None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:
        target = discover(options, client, base, model)
        bodies, rows = request_bodies(target, texts.texts, options.texts_per_request, options.encoding)
        log(
            f"loadtest {target.base}{target.path} ({target.model}, {target.endpoint}): users "
            f"{','.join(map(str, options.users))}, {options.warmup_s:g}+{options.duration_s:g} s per level, "
            f"{options.texts_per_request} text(s) per request from {texts.source}"
        )
        levels = []
        for users in options.users:
            spec = _worker_spec(options, target, bodies, rows, users, headers)
            raw = run_level(spec, timeout_s=options.warmup_s + options.duration_s + options.timeout_s + 60)
            level = {"users": users, **summarize(raw, options.texts_per_request, os.cpu_count() or 1)}
            pages = [None if page is None else server_metrics.parse(page, target.model) for page in raw["metrics"]]
            level["server"] = server_metrics.difference(*pages)
            levels.append(level)
            log(progress_line(level))
    result = _document(options, target, texts, levels, machine_facts())
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(out_dir / RESULT_FILE, result)
        result["saved_to"] = str(out_dir / RESULT_FILE)
    return result


def require_locust() -> None:
    import importlib.util

    if importlib.util.find_spec("locust") is None:
        raise UserError("load tests need locust: pip install 'studentpack[bench]'")


def _worker_spec(
    options: LoadtestOptions, target: Target, bodies: list[str], rows: list[int], users: int, headers: dict[str, str]
) -> dict[str, Any]:
    return {
        "host": target.base,
        "path": target.path,
        "bodies": bodies,
        "rows": rows,
        "check": target.endpoint,
        "users": users,
        "warmup_s": options.warmup_s,
        "duration_s": options.duration_s,
        "max_requests": options.max_requests,
        "timeout_s": options.timeout_s,
        "headers": headers,
        "cpus": list(options.client_cpus),
        "seed": options.seed,
        "metrics_path": "/metrics",
    }


def _document(
    options: LoadtestOptions, target: Target, texts: RequestTexts, levels: list[dict[str, Any]], facts: dict[str, Any]
) -> dict[str, Any]:
    from studentpack.ground.provenance import package_versions

    good = [lv for lv in levels if lv["ok"]]
    best = max(good, key=lambda lv: lv["texts_per_s"]) if good else None
    saturated = [lv["users"] for lv in levels if lv["client_cpu"]["saturated"]]
    notes = []
    loopback = any(h in target.base for h in ("127.0.0.1", "localhost", "[::1]"))
    if loopback and not options.client_cpus:
        notes.append(
            f"the load generator and the server share this machine's {os.cpu_count()} cores (no pinning): "
            "its CPU use is part of what is measured"
        )
    if saturated:
        notes.append(f"the load generator saturated its core at users {saturated}: those figures understate the server")
    settings = {k: v for k, v in asdict(options).items() if k not in ("api_key", "out")}
    return {
        "schema": SCHEMA,
        "target": {
            "url": target.base,
            "path": target.path,
            "endpoint": target.endpoint,
            "model": target.model,
            "server": target.server,
            "info": target.info,
            "model_dir": str(Path(options.model_dir).resolve()) if options.model_dir else None,
        },
        "label": options.label,
        "settings": settings,
        "texts": texts.describe(),
        "levels": levels,
        "best": {"users": best["users"], "texts_per_s": best["texts_per_s"]} if best else None,
        "failures": sum(lv["failures"] for lv in levels),
        "notes": notes,
        "machine": facts,
        "versions": {**package_versions(), "locust": _version("locust")},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
