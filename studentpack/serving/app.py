"""The ASGI app: Open Inference Protocol v2, OpenAI-style /v1/embeddings, /v1/classify and /metrics.

`create_app(models, config)` takes loaded backends or loaders by name. Requests name a model;
only those names exist, and nothing in a request ever reaches a file path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from studentpack import __version__
from studentpack.serving import responses
from studentpack.serving.auth import ApiKey
from studentpack.serving.backends import Backend, Kind, ModelInfo
from studentpack.serving.batcher import DeadlineExceeded, QueueFull, Result, ShuttingDown
from studentpack.serving.config import ServeConfig
from studentpack.serving.endpoint import Call, Handler, endpoint, read_body, unless_client_leaves
from studentpack.serving.lifecycle import Lifecycle, Loader, ModelSlot
from studentpack.serving.metrics import CONTENT_TYPE, UNKNOWN_MODEL, Metrics
from studentpack.serving.openapi import document
from studentpack.serving.validation import ApiError, parse_classify, parse_embeddings, parse_infer

log = logging.getLogger("studentpack.serve")

OFFLOAD_CHARS = 32_768  # tokenize in a worker thread above this many characters per request
OFFLOAD_FLOATS = 65_536  # encode the response in a worker thread above this many numbers
RETRY_AFTER = {"Retry-After": "1"}
VERSION = "1"


@dataclass
class EncodedRows:
    """One request's model outputs, with what its response reports about the run."""

    rows: np.ndarray  # (N, dim) float32
    tokens: int
    truncated: int
    result: Result


class Server:
    """Routes and the shared state behind them (models, limits, metrics)."""

    def __init__(self, lifecycle: Lifecycle, config: ServeConfig, metrics: Metrics, api_key: str | None) -> None:
        self.lifecycle = lifecycle
        self.config = config
        self.metrics = metrics
        self.auth = ApiKey(api_key) if api_key else None

    # --- the model a request names, its rows, its response ------------------------------------

    def slot(self, name: str, call: Call, kind: Kind | None = None) -> ModelSlot:
        slot = self.lifecycle.slots.get(name)
        if slot is None:
            call.model = UNKNOWN_MODEL
            known = ", ".join(sorted(self.lifecycle.slots)) or "none"
            raise ApiError(404, f"unknown model {name!r}; served models: {known}", "model_not_found")
        call.model = name
        if slot.state == "failed":
            raise ApiError(503, f"model {name} failed to load", "model_unavailable")
        if slot.state != "ready" or slot.backend is None:
            raise ApiError(503, f"model {name} is still loading", "model_loading", RETRY_AFTER)
        if kind is not None and slot.backend.info.kind != kind:
            other = "/v1/classify" if slot.backend.info.kind == "classifier" else "/v1/embeddings"
            raise ApiError(400, f"model {name} is a{'n' if kind == 'classifier' else ''} "
                           f"{slot.backend.info.kind} model; use {other}", "wrong_model_kind")  # fmt: skip
        return slot

    async def infer(
        self,
        slot: ModelSlot,
        texts: list[str],
        truncate: bool,
        pairs: list[str] | None = None,
        request: Request | None = None,
    ) -> EncodedRows:
        """Tokenize, check lengths, queue for the batcher, wait for the rows."""
        if self.lifecycle.draining:
            raise ApiError(503, "the server is shutting down", "shutting_down", {**RETRY_AFTER, "Connection": "close"})
        backend, batcher = slot.backend, slot.batcher
        assert backend is not None and batcher is not None
        if sum(map(len, texts)) + sum(map(len, pairs or ())) > OFFLOAD_CHARS:
            tokenized = await asyncio.get_running_loop().run_in_executor(None, backend.tokenize, texts, pairs)
        else:
            tokenized = backend.tokenize(texts, pairs)
        cut = [i for i, flag in enumerate(tokenized.truncated) if flag]
        if cut and not truncate:
            shown = ", ".join(map(str, cut[:10])) + (", ..." if len(cut) > 10 else "")
            raise ApiError(
                422,
                f"{len(cut)} text(s) exceed the model's {backend.info.max_length} tokens (indices {shown}); "
                "shorten them or send truncate=true",
                "input_too_long",
            )
        try:
            submitted = batcher.submit(tokenized.ids, self.config.request_timeout_s, tokenized.types)
            result = await (submitted if request is None else unless_client_leaves(request, submitted))
        except QueueFull:
            raise ApiError(503, f"model {slot.name} is overloaded; retry later", "overloaded", RETRY_AFTER) from None
        except DeadlineExceeded:
            raise ApiError(
                503,
                f"the request waited over {self.config.request_timeout_s:g} s in the queue and was not run",
                "deadline_exceeded",
                RETRY_AFTER,
            ) from None
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down", "shutting_down", RETRY_AFTER) from None
        if not np.isfinite(result.rows).all():  # one answer on every endpoint: never NaN bytes, nulls or a crash
            bad = sorted({int(i) for i in np.nonzero(~np.isfinite(result.rows))[0]})
            log.warning("model %s produced NaN or infinite outputs for %d text(s)", slot.name, len(bad))
            raise ApiError(
                500,
                f"model {slot.name} produced NaN or infinite values for text(s) {', '.join(map(str, bad[:10]))}",
                "non_finite_output",
            )
        series = self.metrics.model(slot.name)
        series.texts.inc(len(texts))
        if cut:
            series.truncated.inc(len(cut))
        tokens = sum(map(len, tokenized.ids))
        return EncodedRows(result.rows, tokens, len(cut), result)

    async def respond(
        self, build: Callable[[], bytes], served: EncodedRows, start: float, media_type: str = responses.JSON
    ) -> Response:
        """The body (built in a worker thread when large), with timing headers."""
        if served.rows.size > OFFLOAD_FLOATS:
            body = await asyncio.get_running_loop().run_in_executor(None, build)
        else:
            body = build()
        headers = responses.timing_headers(
            served.result.queue_s, served.result.inference_s, time.perf_counter() - start
        )
        if served.truncated:
            headers["X-Truncated-Inputs"] = str(served.truncated)
        return Response(body, media_type=media_type, headers=headers)

    # --- health and metadata ------------------------------------------------------------------

    async def live(self, request: Request, call: Call) -> Response:
        return Response(status_code=200)

    async def ready(self, request: Request, call: Call) -> Response:
        return Response(status_code=200 if self.lifecycle.ready else 503)

    async def server_metadata(self, request: Request, call: Call) -> Response:
        return responses.json_response(
            {"name": "studentpack", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def model_metadata(self, request: Request, call: Call) -> Response:
        slot = self.known(request, call)
        info = slot.backend.info if slot.backend is not None else None
        body: dict[str, Any] = {"name": slot.name, "versions": [VERSION], "platform": info.platform if info else ""}
        body["inputs"] = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        if info is not None:
            body["outputs"] = [{"name": info.output_name, "datatype": "FP32", "shape": [-1, info.dim]}]
            body["parameters"] = self.describe(info)
        else:
            body["outputs"] = []
            body["parameters"] = {"state": slot.state}
        return responses.json_response(body)

    def describe(self, info: ModelInfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": info.kind,
            "platform": info.platform,
            "dim": info.dim,
            "max_length": info.max_length,
            "device": info.device,
            "providers": info.providers,
            "threads": self.config.threads,
            "batch_cosine": info.batch_cosine,
            "batching": info.batching,
        }
        if info.sha256:
            out["sha256"] = info.sha256
        if info.labels:
            out["labels"] = info.labels
        return out

    async def model_ready(self, request: Request, call: Call) -> Response:
        slot = self.known(request, call)
        return Response(status_code=200 if slot.state == "ready" and not self.lifecycle.draining else 503)

    def known(self, request: Request, call: Call) -> ModelSlot:
        name = request.path_params["name"]
        version = request.path_params.get("version", VERSION)
        slot = self.lifecycle.slots.get(name)
        if slot is None or version != VERSION:
            call.model = UNKNOWN_MODEL
            what = f"model {name!r}" if slot is None else f"version {version!r} of model {name!r} (only {VERSION})"
            raise ApiError(404, f"unknown {what}", "model_not_found")
        call.model = name
        return slot

    async def list_models(self, request: Request, call: Call) -> Response:
        data = []
        for slot in self.lifecycle.slots.values():
            entry: dict[str, Any] = {"id": slot.name, "object": "model", "owned_by": "studentpack", "state": slot.state}
            if slot.backend is not None:
                entry.update(self.describe(slot.backend.info))
            data.append(entry)
        return responses.json_response({"object": "list", "data": data})

    async def metrics_page(self, request: Request, call: Call) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(self, request: Request, call: Call) -> Response:
        kinds = {slot.name: slot.backend.info.kind if slot.backend else None for slot in self.lifecycle.slots.values()}
        return responses.json_response(document(kinds, self.config.max_inputs))

    # --- inference ----------------------------------------------------------------------------

    async def oip_infer(self, request: Request, call: Call) -> Response:
        start = time.perf_counter()
        slot = self.slot(self.known(request, call).name, call)
        assert slot.backend is not None
        output = slot.backend.info.output_name
        body = await read_body(request, self.config.max_body_bytes)
        header_length = request.headers.get("inference-header-content-length")
        req = parse_infer(slot.name, body, header_length, output, self.config.max_inputs)
        served = await self.infer(slot, req.texts, req.truncate, request=request)
        rows = served.rows
        head: dict[str, Any] = {"model_name": slot.name, "model_version": VERSION}
        if req.id is not None:
            head["id"] = req.id
        if not req.binary_output:
            return await self.respond(lambda: responses.infer_body(head, output, rows), served, start)
        raw = rows.astype("<f4", copy=False).tobytes()
        tensor: dict[str, Any] = {"name": output, "datatype": "FP32", "shape": list(rows.shape)}
        tensor["parameters"] = {"binary_data_size": len(raw)}
        header = responses.dumps({**head, "outputs": [tensor]})
        response = await self.respond(lambda: header + raw, served, start, "application/octet-stream")
        response.headers["Inference-Header-Content-Length"] = str(len(header))
        return response

    async def embeddings(self, request: Request, call: Call) -> Response:
        start = time.perf_counter()
        req = parse_embeddings(await read_body(request, self.config.max_body_bytes), self.config.max_inputs)
        slot = self.slot(req.model, call, "embedding")
        served = await self.infer(slot, req.texts, req.truncate, request=request)
        base64_format = req.encoding_format == "base64"
        build = functools.partial(responses.embeddings_body, served.rows, slot.name, served.tokens, base64_format)
        return await self.respond(build, served, start)

    async def classify(self, request: Request, call: Call) -> Response:
        start = time.perf_counter()
        req = parse_classify(await read_body(request, self.config.max_body_bytes), self.config.max_inputs)
        slot = self.slot(req.model, call, "classifier")
        assert slot.backend is not None
        labels = slot.backend.info.labels
        served = await self.infer(slot, req.texts, req.truncate, req.pairs, request)
        logits = served.rows  # (N, C)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))  # (N, C)
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        data = [
            {
                "index": i,
                "label": labels[int(best[i])],
                "score": float(probs[i, best[i]]),
                "scores": dict(zip(labels, probs[i].tolist(), strict=True)),
                "logits": logits[i].tolist(),
            }
            for i in range(len(logits))
        ]
        usage = {"prompt_tokens": served.tokens, "total_tokens": served.tokens}
        body = {"object": "list", "data": data, "model": slot.name, "usage": usage}
        return await self.respond(lambda: responses.dumps(body), served, start)

    # --- routes -------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        def r(path: str, name: str, handler: Handler, method: str = "GET", oip: bool = True) -> Route:
            return Route(path, endpoint(name, handler, oip, self.metrics, self.auth), methods=[method])

        routes = [  # the hot paths first: Starlette tries routes in order
            r("/v1/embeddings", "embeddings", self.embeddings, "POST", oip=False),
            r("/v2/models/{name}/infer", "infer", self.oip_infer, "POST"),
            r("/v1/classify", "classify", self.classify, "POST", oip=False),
            r("/v2/health/live", "live", self.live),
            r("/v2/health/ready", "ready", self.ready),
            r("/v2", "server_metadata", self.server_metadata),
            r("/v1/models", "models", self.list_models, oip=False),
            r("/metrics", "metrics", self.metrics_page, oip=False),
            r("/openapi.json", "openapi", self.openapi, oip=False),
            r("/v2/models/{name}/versions/{version}/infer", "infer", self.oip_infer, "POST"),
        ]
        for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            routes += [
                r(base, "model_metadata", self.model_metadata),
                r(base + "/ready", "model_ready", self.model_ready),
            ]
        return routes


def create_app(
    models: Mapping[str, Backend | Loader],
    config: ServeConfig | None = None,
    *,
    api_key: str | None = None,
    on_fatal: Callable[[str], None] | None = None,
) -> Starlette:
    """An ASGI app serving `models` (backends, or loaders called in the background at startup)."""
    config = config or ServeConfig()
    metrics = Metrics()
    lifecycle = Lifecycle(models, config, metrics, on_fatal)
    server = Server(lifecycle, config, metrics, api_key)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await lifecycle.start()
        try:
            yield
        finally:
            await lifecycle.stop()

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        path, oip = request.url.path, request.url.path.startswith("/v2")
        if status == 405:  # Starlette's router names the methods the route takes in an Allow header
            allow = (getattr(exc, "headers", None) or {}).get("Allow")
            message = f"method {request.method} is not allowed on {path}" + (f" (allowed: {allow})" if allow else "")
            error = ApiError(405, message, "method_not_allowed", {"Allow": allow} if allow else None)
            return responses.error_response(error, oip)
        return responses.error_response(ApiError(status, f"no such endpoint: {path}", "not_found"), oip)

    app = Starlette(routes=server.routes(), lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    app.state.lifecycle = lifecycle
    app.state.metrics = metrics
    app.state.config = config
    return app
