"""What every request goes through around its handler: the API key, error bodies, request metrics and
timing (`endpoint`), a body read with a size cap (`read_body`), and the watch for a client that leaves
before its answer (`unless_client_leaves`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from studentpack.serving import responses
from studentpack.serving.auth import OPEN_PATHS, ApiKey
from studentpack.serving.batcher import Result
from studentpack.serving.metrics import Metrics
from studentpack.serving.validation import ApiError

log = logging.getLogger("studentpack.serve")


@dataclass
class Call:
    """What one request did, for its metrics line."""

    model: str = ""  # "" for endpoints about no model; UNKNOWN_MODEL for names that are not served


Handler = Callable[[Request, Call], Awaitable[Response]]


def endpoint(
    name: str, handler: Handler, oip: bool, metrics: Metrics, auth: ApiKey | None
) -> Callable[[Request], Awaitable[Response]]:
    """Auth, error bodies, request metrics and timing around one handler."""

    async def wrapped(request: Request) -> Response:
        start = time.perf_counter()
        call = Call()
        metrics.inflight.inc()
        try:
            if (
                auth is not None
                and request.url.path not in OPEN_PATHS
                and not auth.allows(request.headers.get("authorization"))
            ):
                raise ApiError(401, "missing or wrong API key", "unauthorized", {"WWW-Authenticate": "Bearer"})
            response = await handler(request, call)
        except ApiError as exc:
            response = responses.error_response(exc, oip)
        except Exception:
            log.exception("%s failed", name)
            response = responses.error_response(ApiError(500, "internal error", "internal_error"), oip)
        finally:
            metrics.inflight.dec()
        elapsed = time.perf_counter() - start
        metrics.request_done(call.model, name, response.status_code, elapsed)
        return response

    return wrapped


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is {declared} bytes; at most {limit}", "body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over {limit} bytes", "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def unless_client_leaves(request: Request, submitted: Awaitable[Result]) -> Result:
    """The batcher's answer, or a 499 as soon as the client disconnects: its queued rows are then
    dropped by the batcher (a cancelled job is never run), so no model time goes to nobody."""
    job = asyncio.ensure_future(submitted)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if job.done():
        return job.result()
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job
    raise ApiError(499, "the client closed the connection before the answer", "client_closed_request")


async def _disconnected(request: Request) -> None:
    """Returns when the ASGI server reports the client gone (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
