"""Response bodies: JSON (orjson when installed), error bodies per protocol, timing headers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.responses import Response

from serving.validation import ApiError

_dumps: Callable[[Any], bytes]
try:  # optional speed-up: orjson writes floats several times faster than the json module
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


JSON = "application/json"


def dumps(obj: Any) -> bytes:
    return _dumps(obj)


def floats(rows: np.ndarray) -> Any:
    """A float32 array as JSON-ready numbers; the values survive a round trip exactly."""
    return rows.astype(np.float32, copy=False).tolist()


def b64(row: np.ndarray) -> str:
    """OpenAI's base64 encoding: the little-endian float32 bytes."""
    return base64.b64encode(row.astype("<f4", copy=False).tobytes()).decode("ascii")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status_code=status, media_type=JSON, headers=headers)


def error_response(exc: ApiError, oip: bool) -> Response:
    """OIP's error body is {"error": "message"}; the OpenAI-style endpoints use {"error": {...}}."""
    body: dict[str, Any]
    if oip:
        body = {"error": exc.message}
    else:
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        body = {"error": {"message": exc.message, "type": kind, "code": exc.code}}
    return Response(dumps(body), status_code=exc.status, media_type=JSON, headers=exc.headers)


def timing_headers(queue_s: float, inference_s: float, total_s: float) -> dict[str, str]:
    q, i, t = queue_s * 1000, inference_s * 1000, total_s * 1000
    return {
        "X-Queue-Time-Ms": f"{q:.3f}",
        "X-Inference-Time-Ms": f"{i:.3f}",
        "Server-Timing": f"queue;dur={q:.3f}, inference;dur={i:.3f}, total;dur={t:.3f}",
    }
