"""Schemathesis against a real server on loopback, driven by the server's own /openapi.json.

Every operation gets generated requests, valid and invalid by the schema; each answer must be no
5xx, a documented status, the documented content type and a body matching its schema, and a body
the schema forbids must be refused with a 4xx. The fake model answers at once, so the cases test
the HTTP layer and the validators, not a network. FUZZ_EXAMPLES cases per operation by default;
`slow` runs FUZZ_EXAMPLES_SLOW.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")  # a dev dependency; a GPU box may lack it

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from studentpack.serving.openapi import document  # noqa: E402
from tests.test_serve_e2e import Server, start  # noqa: E402
from tests.test_serve_load import metric  # noqa: E402

FUZZ_EXAMPLES = 200
FUZZ_EXAMPLES_SLOW = 2000


@pytest.fixture(scope="module")
def fake_server() -> Iterator[Server]:
    server = start([sys.executable, "-m", "tests.fake_server", "--classifier", "--max-inputs", "8"])
    try:
        yield server
        page = httpx.get(f"{server.url}/metrics", timeout=30).text
        answered = metric(page, "studentpack_requests_total")
        server_errors = sum(metric(page, "studentpack_requests_total", status=str(code)) for code in range(500, 600))
        print(f"\nfuzz: the server answered {answered:.0f} generated requests, {server_errors:.0f} with a 5xx")
        assert server_errors == 0
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(fake_server: Server) -> Any:
    # a body the schema forbids must get a 4xx: the default list of rejections plus 413 (too many texts)
    rejections = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
    config = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": rejections}}})
    return schemathesis.openapi.from_url(f"{fake_server.url}/openapi.json", config=config)


# (path, method, mode): bodies the schema forbids only exist for operations that take a body
CASES = sorted(
    (path, method.upper(), mode)
    for path, item in document({"fake": "embedding"}, 8)["paths"].items()
    for method in item
    for mode in ("positive", "negative")
    if mode == "positive" or method == "post"
)


def fuzz(api_schema: Any, path: str, method: str, mode: str, examples: int) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(GenerationMode(mode)))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def one(case: schemathesis.Case) -> None:
        case.call_and_validate()

    one()


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_every_endpoint_answers_generated_requests_by_its_schema(
    api_schema: Any, path: str, method: str, mode: str
) -> None:
    fuzz(api_schema, path, method, mode, FUZZ_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_every_endpoint_answers_many_generated_requests(api_schema: Any, path: str, method: str, mode: str) -> None:
    fuzz(api_schema, path, method, mode, FUZZ_EXAMPLES_SLOW)


def test_the_document_names_every_route_and_the_served_models(fake_server: Server) -> None:
    from studentpack.serving.app import create_app
    from tests.fake_server import FakeBackend

    doc = httpx.get(f"{fake_server.url}/openapi.json", timeout=30).json()
    routes = {route.path for route in create_app({"x": FakeBackend()}).routes}  # type: ignore[attr-defined]
    assert routes == set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert schemas["EmbeddingsRequest"]["properties"]["model"]["enum"] == ["fake"]
    assert schemas["ClassifyRequest"]["properties"]["model"]["enum"] == ["fake-classifier"]
