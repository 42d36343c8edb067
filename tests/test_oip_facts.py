"""What another OIP v2 server tells of itself and of a model (`oip_server_facts`), over real HTTP on
loopback: Triton's answers as the real server gives them (shapes taken from tritonserver 2.x), a
server without the config extension, and one that answers garbage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from studentpack.engines.remote import oip_server_facts

TRITON = {
    "/v2": {"name": "triton", "version": "2.57.0", "extensions": ["classification", "model_configuration"]},
    "/v2/models/m/config": {
        "name": "m",
        "backend": "python",
        "max_batch_size": 32,
        "instance_group": [{"name": "m_0", "kind": "KIND_CPU", "count": 1}],
        "parameters": {
            "max_length": {"string_value": "64"},
            "source_sha256": {"string_value": "ab" * 32},
            "pad_token_id": {"string_value": "0"},
        },
    },
}


def _server(routes: dict[str, Any]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls it by this name
            body = routes.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def triton_like() -> Iterator[str]:
    yield from _server(TRITON)


def test_triton_names_itself_the_variant_and_the_device(triton_like: str) -> None:
    with httpx.Client(base_url=triton_like) as client:
        facts = oip_server_facts(client, "m")
    assert facts == {"server": "triton", "max_length": 64, "sha256": "ab" * 32, "device": "cpu"}


@pytest.mark.parametrize(
    "routes",
    [
        {},  # neither GET /v2 nor the config extension
        {"/v2": b"not json", "/v2/models/m/config": b"[1, 2]"},  # answers that are not objects
        {"/v2": {"version": "1"}, "/v2/models/m/config": {"parameters": "x", "instance_group": [{"kind": "KIND_X"}]}},
        {"/v2/models/m/config": {"parameters": {"max_length": "64", "source_sha256": ["x"]}}},  # not {string_value}
    ],
)
def test_a_server_that_tells_less_gives_only_what_it_told(routes: dict[str, Any]) -> None:
    for base in _server(routes):
        with httpx.Client(base_url=base) as client:
            assert oip_server_facts(client, "m") == {"server": "oip"}


def test_a_gpu_instance_group_means_cuda() -> None:
    routes = {**TRITON, "/v2/models/m/config": {"instance_group": [{"kind": "KIND_GPU", "count": 1}]}}
    for base in _server(routes):
        with httpx.Client(base_url=base) as client:
            assert oip_server_facts(client, "m") == {"server": "triton", "device": "cuda"}
