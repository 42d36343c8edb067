"""HttpEncoder's truncation count stays exact when its worker threads answer at once."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import httpx

from studentpack.engines.remote import HttpEncoder


def _server(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/models":
        entry = {"id": "m", "kind": "embedding", "dim": 2, "max_length": 8, "state": "ready", "owned_by": "studentpack"}
        return httpx.Response(200, json={"object": "list", "data": [entry]})
    return httpx.Response(200, json={"data": []}, headers={"x-truncated-inputs": "1"})


def test_the_truncated_count_loses_nothing_across_threads() -> None:
    encoder = HttpEncoder("http://test", "m", transport=httpx.MockTransport(_server))
    calls, threads = 400, 8
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows: a lost update shows
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: [encoder._post("/v1/embeddings", {}) for _ in range(calls)], range(threads)))
    finally:
        sys.setswitchinterval(interval)
        encoder.close()
    assert encoder.truncated == calls * threads
