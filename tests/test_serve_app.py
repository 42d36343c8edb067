"""The server in-process through httpx's ASGI transport: every endpoint, every bad input, batching, limits."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from studentpack.ground.errors import GpuUnavailableError, UserError
from studentpack.serving.app import create_app
from studentpack.serving.backends import Backend, TorchBackend, pad_batch
from studentpack.serving.config import ServeConfig
from tests.fake_server import FakeBackend, lifespan
from tests.tiny import (
    SENTENCES,
    save_classifier_dir,
)

LONG = " ".join(["the film was very good"] * 30)  # > 64 tokens: over the tiny model's maximum


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_classifier_dir(tmp_path_factory.mktemp("tiny-cls"))


@pytest.fixture(scope="module")
def encoder(tiny_bert_dir: Path) -> TorchBackend:
    return TorchBackend(tiny_bert_dir, device="cpu", max_length=128, threads=1)


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir: Path) -> TorchBackend:
    return TorchBackend(tiny_classifier_dir, device="cpu", max_length=128, threads=1)


@pytest.fixture(scope="module")
def reference(tiny_bert_dir: Path, tiny_classifier_dir: Path) -> dict[str, Any]:
    """Direct, unbatched in-process inference with the library's own encoders."""
    from studentpack.engines.pytorch import open_torch

    return {"tiny": open_torch(tiny_bert_dir), "cls": open_torch(tiny_classifier_dir)}


Client = httpx.AsyncClient


@asynccontextmanager
async def serving(models: dict[str, Any], **config: Any) -> AsyncIterator[Client]:
    app = create_app(models, ServeConfig(**config))
    async with lifespan(app):
        await app.state.lifecycle.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def run(models: dict[str, Any], body: Callable[[Client], Awaitable[None]], **config: Any) -> None:
    async def main() -> None:
        async with serving(models, **config) as client:
            await body(client)

    asyncio.run(main())


def embed(client: Client, texts: Any, model: str = "tiny", **extra: Any) -> Awaitable[httpx.Response]:
    return client.post("/v1/embeddings", json={"model": model, "input": texts, **extra})


def vectors(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.asarray([d["embedding"] for d in data], dtype=np.float32)


# --- health and metadata ----------------------------------------------------------------------


def test_health_metadata_and_listing(encoder: TorchBackend, classifier: TorchBackend) -> None:
    async def body(c: Client) -> None:
        assert (await c.get("/v2/health/live")).status_code == 200
        assert (await c.get("/v2/health/ready")).status_code == 200
        meta = (await c.get("/v2")).json()
        assert meta["name"] == "studentpack" and "version" in meta
        model = (await c.get("/v2/models/tiny")).json()
        assert model["name"] == "tiny" and model["versions"] == ["1"]
        assert model["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert model["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 32]}]
        assert model["parameters"]["providers"] == ["torch:cpu"]
        assert model["parameters"]["max_length"] == 64
        cls = (await c.get("/v2/models/cls/versions/1")).json()
        assert cls["outputs"][0]["name"] == "logits" and cls["parameters"]["labels"] == ["negative", "positive"]
        assert (await c.get("/v2/models/tiny/ready")).status_code == 200
        assert (await c.get("/v2/models/tiny/versions/1/ready")).status_code == 200
        listing = (await c.get("/v1/models")).json()["data"]
        assert [(m["id"], m["kind"], m["state"]) for m in listing] == [
            ("tiny", "embedding", "ready"),
            ("cls", "classifier", "ready"),
        ]
        for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/tiny/versions/2"):
            response = await c.get(path)
            assert response.status_code == 404 and "error" in response.json(), path

    run({"tiny": encoder, "cls": classifier}, body)


def test_unknown_routes_and_methods_answer_json(encoder: TorchBackend) -> None:
    async def body(c: Client) -> None:
        response = await c.get("/nope")
        assert response.status_code == 404 and "no such endpoint" in response.json()["error"]["message"]
        assert response.json()["error"]["code"] == "not_found"
        response = await c.get("/v1/embeddings")
        assert response.status_code == 405 and response.json()["error"]["message"]
        response = await c.post("/v2/health/live")
        assert response.status_code == 405 and isinstance(response.json()["error"], str)

    run({"tiny": encoder}, body)


def test_wrong_method_is_method_not_allowed_with_an_allow_header(encoder: TorchBackend) -> None:
    async def body(c: Client) -> None:
        response = await c.get("/v1/embeddings")
        assert response.status_code == 405
        error = response.json()["error"]
        assert error["code"] == "method_not_allowed" and error["type"] == "invalid_request_error"
        assert "GET" in error["message"] and "/v1/embeddings" in error["message"]
        assert response.headers["Allow"] == "POST"
        response = await c.delete("/v2/health/live")  # OIP error body: {"error": "message"}
        assert response.status_code == 405 and "DELETE" in response.json()["error"]
        assert "GET" in response.headers["Allow"]
        response = await c.get("/v1/nope")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert "Allow" not in response.headers

    run({"tiny": encoder}, body)


# --- results ----------------------------------------------------------------------------------


def test_embeddings_equal_in_process_results(encoder: TorchBackend, reference: dict[str, Any]) -> None:
    expected = reference["tiny"].encode(SENTENCES)

    async def body(c: Client) -> None:
        got = vectors(await embed(c, SENTENCES))
        np.testing.assert_allclose(got, expected, atol=1e-5)
        one = await embed(c, SENTENCES[3])
        np.testing.assert_allclose(vectors(one)[0], expected[3], atol=1e-5)
        payload = one.json()
        assert payload["object"] == "list" and payload["model"] == "tiny"
        assert payload["usage"]["prompt_tokens"] == payload["usage"]["total_tokens"] > 2
        for header in ("x-queue-time-ms", "x-inference-time-ms", "server-timing"):
            assert header in one.headers
        b64 = (await embed(c, SENTENCES[:2], encoding_format="base64")).json()["data"]
        decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64])
        np.testing.assert_array_equal(decoded, vectors(await embed(c, SENTENCES[:2])))

    run({"tiny": encoder}, body)


def test_oip_infer_json_and_binary(encoder: TorchBackend, reference: dict[str, Any]) -> None:
    texts = SENTENCES[:5]
    expected = reference["tiny"].encode(texts)

    async def body(c: Client) -> None:
        request = {
            "id": "r1",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [5, 1], "data": [[t] for t in texts]}],
            "outputs": [{"name": "embedding", "parameters": {"binary_data": False}}],
        }
        response = await c.post("/v2/models/tiny/infer", json=request)
        assert response.status_code == 200, response.text
        out = response.json()
        assert out["id"] == "r1" and out["model_name"] == "tiny"
        (tensor,) = out["outputs"]
        assert tensor["name"] == "embedding" and tensor["datatype"] == "FP32" and tensor["shape"] == [5, 32]
        np.testing.assert_allclose(np.asarray(tensor["data"], np.float32).reshape(5, 32), expected, atol=1e-5)
        # Triton's binary tensor extension, both ways
        raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
        header = json.dumps(
            {
                "inputs": [
                    {"name": "text", "datatype": "BYTES", "shape": [5], "parameters": {"binary_data_size": len(raw)}}
                ],
                "outputs": [{"name": "embedding", "parameters": {"binary_data": True}}],
            }
        ).encode()
        response = await c.post(
            "/v2/models/tiny/versions/1/infer",
            content=header + raw,
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        assert response.status_code == 200, response.text
        length = int(response.headers["inference-header-content-length"])
        head = json.loads(response.content[:length])
        assert head["outputs"][0]["parameters"]["binary_data_size"] == 5 * 32 * 4
        rows = np.frombuffer(response.content[length:], dtype="<f4").reshape(5, 32)
        np.testing.assert_allclose(rows, expected, atol=1e-5)

    run({"tiny": encoder}, body)


def test_classify_and_logits_equal_in_process(classifier: TorchBackend, reference: dict[str, Any]) -> None:
    texts, pairs = SENTENCES[:4], SENTENCES[4:8]
    expected = reference["cls"].predict(texts)
    expected_pairs = reference["cls"].predict(texts, text_pairs=pairs)

    async def body(c: Client) -> None:
        response = await c.post("/v1/classify", json={"model": "cls", "input": texts})
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        logits = np.asarray([d["logits"] for d in data], np.float32)
        np.testing.assert_allclose(logits, expected, atol=1e-5)
        for d, row in zip(data, expected, strict=True):
            assert d["label"] == ["negative", "positive"][int(row.argmax())]
            assert abs(sum(d["scores"].values()) - 1) < 1e-6 and d["score"] == max(d["scores"].values())
        pair_input = [[a, b] for a, b in zip(texts, pairs, strict=True)]
        response = await c.post("/v1/classify", json={"model": "cls", "input": pair_input})
        got = np.asarray([d["logits"] for d in response.json()["data"]], np.float32)
        np.testing.assert_allclose(got, expected_pairs, atol=1e-5)
        oip = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [4], "data": texts}]}
        out = (await c.post("/v2/models/cls/infer", json=oip)).json()["outputs"][0]
        assert out["name"] == "logits" and out["shape"] == [4, 2]
        np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(4, 2), expected, atol=1e-5)
        # each model only on its own endpoint
        wrong = await embed(c, "hello", model="cls")
        assert wrong.status_code == 400 and "/v1/classify" in wrong.json()["error"]["message"]

    run({"cls": classifier}, body)


def test_truncation_default_and_refusal(encoder: TorchBackend, reference: dict[str, Any]) -> None:
    expected = reference["tiny"].encode([LONG])

    async def body(c: Client) -> None:
        response = await embed(c, ["short text", LONG])
        assert response.headers["x-truncated-inputs"] == "1"
        np.testing.assert_allclose(vectors(response)[1], expected[0], atol=1e-5)
        refused = await embed(c, ["short text", LONG], truncate=False)
        assert refused.status_code == 422
        assert "indices 1" in refused.json()["error"]["message"] and "64 tokens" in refused.json()["error"]["message"]
        oip = {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [LONG]}],
            "parameters": {"truncate": False},
        }
        refused = await c.post("/v2/models/tiny/infer", json=oip)
        assert refused.status_code == 422 and isinstance(refused.json()["error"], str)

    run({"tiny": encoder}, body)


# --- bad input --------------------------------------------------------------------------------

OIP_OK = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}

BAD_V1 = [
    ("malformed json", b'{"model": "tiny", "input": [', 400),
    ("not utf-8", b"\xff\xfe{", 400),
    ("empty body", b"", 400),
    ("not an object", b'["tiny", "hi"]', 422),
    ("input missing", b'{"model": "tiny"}', 422),
    ("input a number", b'{"model": "tiny", "input": 5}', 422),
    ("input of numbers", b'{"model": "tiny", "input": [1, 2]}', 422),
    ("model a number", b'{"model": 3, "input": "hi"}', 422),
    ("empty list", b'{"model": "tiny", "input": []}', 422),
    ("empty string", b'{"model": "tiny", "input": ["ok", ""]}', 422),
    ("truncate not bool", b'{"model": "tiny", "input": "hi", "truncate": "no"}', 422),
    ("too many inputs", json.dumps({"model": "tiny", "input": ["x"] * 9}).encode(), 413),
    ("unknown model", b'{"model": "../../etc/passwd", "input": "hi"}', 404),
    ("body too large", json.dumps({"model": "tiny", "input": ["y" * 3000]}).encode(), 413),
]


@pytest.mark.parametrize(("case", "payload", "status"), BAD_V1, ids=[c[0] for c in BAD_V1])
def test_bad_embeddings_requests_get_4xx(encoder: TorchBackend, case: str, payload: bytes, status: int) -> None:
    async def body(c: Client) -> None:
        response = await c.post("/v1/embeddings", content=payload, headers={"content-type": "application/json"})
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error"
        classify = await c.post("/v1/classify", content=payload.replace(b'"tiny"', b'"cls"'))
        assert 400 <= classify.status_code < 500

    run({"tiny": encoder, "cls": FakeBackend("classifier")}, body, max_inputs=8, max_body_bytes=2048)


def test_encoding_format_is_checked(encoder: TorchBackend) -> None:
    async def body(c: Client) -> None:
        response = await embed(c, "hi", encoding_format="int8")
        assert response.status_code == 422 and "encoding_format" in response.json()["error"]["message"]

    run({"tiny": encoder}, body)


def _oip(**change: Any) -> dict[str, Any]:
    tensor = {**OIP_OK["inputs"][0], **change}  # type: ignore[index]
    return {"inputs": [{k: v for k, v in tensor.items() if v is not None}]}


BAD_OIP = [
    ("no inputs", {"outputs": []}, 422),
    ("two inputs", {"inputs": [OIP_OK["inputs"][0]] * 2}, 422),  # type: ignore[index]
    ("wrong input name", _oip(name="input_ids"), 422),
    ("wrong datatype", _oip(datatype="INT64"), 422),
    ("no shape", _oip(shape=None), 422),
    ("bad shape", _oip(shape=["x"]), 422),
    ("shape mismatch", _oip(shape=[3]), 422),
    ("no data", _oip(data=None), 422),
    ("data not strings", _oip(data=[7]), 422),
    ("empty string", _oip(data=[""]), 422),
    ("empty tensor", _oip(shape=[0], data=[]), 422),
    ("too many", _oip(shape=[9], data=["a"] * 9), 413),
    ("unknown output", {**OIP_OK, "outputs": [{"name": "logits"}]}, 422),
    ("id not a string", {**OIP_OK, "id": 5}, 422),
]


@pytest.mark.parametrize(("case", "payload", "status"), BAD_OIP, ids=[c[0] for c in BAD_OIP])
def test_bad_infer_requests_get_4xx(encoder: TorchBackend, case: str, payload: Any, status: int) -> None:
    async def body(c: Client) -> None:
        response = await c.post("/v2/models/tiny/infer", json=payload)
        assert response.status_code == status, response.text
        assert isinstance(response.json()["error"], str) and response.json()["error"]

    run({"tiny": encoder}, body, max_inputs=8)


def test_bad_binary_and_oversized_infer_bodies(encoder: TorchBackend) -> None:
    async def body(c: Client) -> None:
        for headers, content in [
            ({"Inference-Header-Content-Length": "999"}, b"{}"),
            ({"Inference-Header-Content-Length": "x"}, b"{}"),
        ]:
            response = await c.post("/v2/models/tiny/infer", content=content, headers=headers)
            assert response.status_code == 400, response.text
        header = json.dumps(
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]}
        ).encode()
        truncated = header + struct.pack("<I", 10) + b"ab"
        response = await c.post(
            "/v2/models/tiny/infer", content=truncated, headers={"Inference-Header-Content-Length": str(len(header))}
        )
        assert response.status_code == 400 and "truncated" in response.json()["error"]
        big = json.dumps(_oip(data=["z" * 5000])).encode()
        response = await c.post("/v2/models/tiny/infer", content=big)
        assert response.status_code == 413
        # a declared length over the limit is refused before the body is read
        response = await c.post("/v1/embeddings", content=b"{}", headers={"content-length": "99999999"})
        assert response.status_code == 413
        unknown = await c.post("/v2/models/nope/infer", json=OIP_OK)
        assert unknown.status_code == 404

    run({"tiny": encoder}, body, max_body_bytes=4096)


# --- auth -------------------------------------------------------------------------------------


def test_api_key_guards_everything_but_health() -> None:
    async def main() -> None:
        app = create_app({"fake": FakeBackend()}, ServeConfig(), api_key="s3cret")
        async with lifespan(app):
            await app.state.lifecycle.wait_loaded()
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                assert (await c.get("/v2/health/live")).status_code == 200
                assert (await c.get("/v2/health/ready")).status_code == 200
                for auth in (None, "Bearer wrong", "s3cret", "Bearer s3cret "):
                    headers = {"Authorization": auth} if auth else {}
                    for method, path in [("GET", "/v2"), ("GET", "/metrics"), ("POST", "/v1/embeddings")]:
                        response = await c.request(method, path, headers=headers, json={"model": "fake", "input": "a"})
                        assert response.status_code == 401, (auth, path)
                        assert response.headers["www-authenticate"] == "Bearer"
                ok = {"Authorization": "Bearer s3cret"}
                response = await c.post("/v1/embeddings", headers=ok, json={"model": "fake", "input": "a"})
                assert response.status_code == 200
                assert (await c.get("/v2/models/fake", headers=ok)).status_code == 200

    asyncio.run(main())


# --- batching ---------------------------------------------------------------------------------


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(
    encoder: TorchBackend, reference: dict[str, Any]
) -> None:
    texts = [f"{s} {i}" for i, s in enumerate(SENTENCES * 2)]  # 24 distinct texts
    expected = reference["tiny"].encode(texts, batch_size=1)

    async def body(c: Client) -> None:
        responses = await asyncio.gather(*(embed(c, t) for t in texts))
        for got, want in zip(responses, expected, strict=True):
            np.testing.assert_allclose(vectors(got)[0], want, atol=1e-5)
        metrics = (await c.get("/metrics")).text
        count = _sample(metrics, 'studentpack_batch_size_count{model="tiny"}')
        singles = _sample(metrics, 'studentpack_batch_size_bucket{le="1.0",model="tiny"}')
        assert count < len(texts) and count - singles >= 1  # at least one batch of several requests

    run({"tiny": encoder}, body, max_wait_ms=50)


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_large_requests_are_split_by_size_and_token_budget() -> None:
    fake = FakeBackend(max_length=16)
    texts = [" ".join(["w"] * (i % 13)) + f" t{i}" for i in range(40)]

    async def body(c: Client) -> None:
        got = vectors(await embed(c, texts, model="fake"))
        want = np.stack([fake.row(ids) for ids in fake.tokenize(texts).ids])
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert sum(len(b) for b in fake.batches) == 40
        for batch in fake.batches:
            longest = max(map(len, batch))
            assert len(batch) <= 8 and len(batch) * longest <= 48, [len(r) for r in batch]

    run({"fake": fake}, body, max_batch=8, max_batch_tokens=48, max_inputs=64)


def test_pad_batch_pads_to_the_batch_longest() -> None:
    feeds = pad_batch([[5, 6, 7], [8]], [None, [0]], pad_id=0)
    assert feeds.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert feeds.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert feeds.token_type_ids.shape == (2, 3)


# --- load, overload, deadlines, draining ------------------------------------------------------


def test_overload_answers_503_at_once_with_retry_after() -> None:
    gate = threading.Event()
    fake = FakeBackend(gate=gate)

    async def body(c: Client) -> None:
        first = asyncio.create_task(embed(c, "one", model="fake"))
        await asyncio.to_thread(fake.started.wait, 30)  # the model is now busy with "one"
        second = asyncio.create_task(embed(c, ["two", "three"], model="fake"))  # fills the queue (2)
        while c.app.state.lifecycle.slots["fake"].batcher.queued < 2:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        third = await asyncio.wait_for(embed(c, "four", model="fake"), 30)  # answered while the gate is shut
        assert third.status_code == 503 and third.headers["retry-after"] == "1"
        assert third.json()["error"]["code"] == "overloaded"
        assert not gate.is_set() and not first.done()
        gate.set()
        assert (await first).status_code == 200 and (await second).status_code == 200
        assert ["four" in str(b) for b in fake.batches].count(True) == 0

    run({"fake": fake}, body, max_queue=2, max_inputs=2)


def test_request_past_its_deadline_is_answered_and_not_computed() -> None:
    gate = threading.Event()
    fake = FakeBackend(gate=gate)

    async def body(c: Client) -> None:
        first = asyncio.create_task(embed(c, "one", model="fake"))
        await asyncio.to_thread(fake.started.wait, 30)
        late = await asyncio.wait_for(embed(c, "late text", model="fake"), 30)  # its deadline passes while queued
        assert late.status_code == 503 and late.json()["error"]["code"] == "deadline_exceeded"
        gate.set()
        assert (await first).status_code == 200
        late_ids = fake.tokenize(["late text"]).ids[0]
        assert all(late_ids not in batch for batch in fake.batches)
        assert c.app.state.lifecycle.slots["fake"].batcher.queued == 0  # type: ignore[attr-defined]

    run({"fake": fake}, body, request_timeout_s=0.2)


def test_readiness_is_503_while_loading_then_200() -> None:
    release = threading.Event()
    fake = FakeBackend()

    def loader() -> Backend:
        release.wait(30)
        return fake

    async def main() -> None:
        app = create_app({"fake": loader}, ServeConfig())
        transport = httpx.ASGITransport(app=app)
        async with lifespan(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/v2/health/live")).status_code == 200
            assert (await c.get("/v2/health/ready")).status_code == 503
            assert (await c.get("/v2/models/fake/ready")).status_code == 503
            busy = await embed(c, "hi", model="fake")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            oip = await c.post("/v2/models/fake/infer", json=OIP_OK)
            assert oip.status_code == 503
            release.set()
            await app.state.lifecycle.wait_loaded()
            assert (await c.get("/v2/health/ready")).status_code == 200
            assert (await embed(c, "hi", model="fake")).status_code == 200
        assert fake.closed

    asyncio.run(main())


def test_a_model_that_fails_to_load_makes_the_server_unready() -> None:
    fatal: list[str] = []

    def loader() -> Backend:
        raise GpuUnavailableError("cuda was asked for but the session runs on CPUExecutionProvider")

    async def main() -> None:
        app = create_app({"good": FakeBackend(), "bad": loader}, ServeConfig(), on_fatal=fatal.append)
        async with lifespan(app):
            await app.state.lifecycle.wait_loaded()
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                assert (await c.get("/v2/health/ready")).status_code == 503
                assert (await c.get("/v2/models/bad/ready")).status_code == 503
                response = await embed(c, "hi", model="bad")
                assert response.status_code == 503 and "failed to load" in response.json()["error"]["message"]

    asyncio.run(main())
    assert fatal and "CPUExecutionProvider" in fatal[0] and fatal[0].startswith("model bad:")


def test_draining_refuses_new_work_and_reports_unready() -> None:
    async def body(c: Client) -> None:
        c.app.state.lifecycle.begin_drain()  # type: ignore[attr-defined]
        assert (await c.get("/v2/health/live")).status_code == 200
        assert (await c.get("/v2/health/ready")).status_code == 503
        assert (await c.get("/v2/models/fake/ready")).status_code == 503
        response = await embed(c, "hi", model="fake")
        assert response.status_code == 503 and response.headers["connection"] == "close"

    run({"fake": FakeBackend()}, body)


def test_a_failing_model_answers_500_and_the_server_goes_on() -> None:
    bad = FakeBackend(fail=True)

    async def body(c: Client) -> None:
        response = await embed(c, "hi", model="bad")
        assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
        assert (await embed(c, "hi", model="good")).status_code == 200
        metrics = (await c.get("/metrics")).text
        assert 'studentpack_requests_total{endpoint="embeddings",model="bad",status="500"} 1.0' in metrics

    run({"bad": bad, "good": FakeBackend()}, body)


def test_metrics_page(encoder: TorchBackend) -> None:
    async def body(c: Client) -> None:
        await embed(c, ["a film", "a story"])
        await embed(c, [])
        await embed(c, "x", model="missing")
        response = await c.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        text = response.text
        for line in (
            'studentpack_requests_total{endpoint="embeddings",model="tiny",status="200"} 1.0',
            'studentpack_requests_total{endpoint="embeddings",model="",status="422"} 1.0',
            'studentpack_requests_total{endpoint="embeddings",model="_unknown",status="404"} 1.0',
            'studentpack_batch_size_sum{model="tiny"} 2.0',
            'studentpack_queue_depth{model="tiny"} 0.0',
            'studentpack_texts_total{model="tiny"} 2.0',
        ):
            assert line in text, line
        for name in ("request", "queue", "inference"):
            assert f"studentpack_{name}_duration_seconds_count{{" in text

    run({"tiny": encoder}, body)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(UserError, match="max_inputs"):
        ServeConfig(max_inputs=10, max_queue=5)
    with pytest.raises(UserError, match="device"):
        ServeConfig(device="tpu")
    with pytest.raises(UserError, match="max_batch"):
        ServeConfig(max_batch=0)


class _NanBackend(FakeBackend):
    def run(self, ids: Any, types: Any) -> np.ndarray:
        rows = super().run(ids, types)
        rows[0, 0] = np.nan
        return rows


def test_non_finite_model_output_is_a_server_error_not_bad_json() -> None:
    async def body(c: Client) -> None:
        response = await embed(c, "hi", model="nan")
        assert response.status_code == 500 and response.json()["error"]["code"] == "non_finite_output"
        response = await c.post("/v2/models/nan/infer", json=OIP_OK)
        assert response.status_code == 500 and "NaN or infinite" in response.json()["error"]

    run({"nan": _NanBackend()}, body)


def test_deeply_nested_json_is_a_400_on_every_endpoint(encoder: TorchBackend, caplog: pytest.LogCaptureFixture) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000

    async def body(c: Client) -> None:
        for path in ("/v1/embeddings", "/v1/classify", "/v2/models/tiny/infer"):
            response = await c.post(path, content=deep, headers={"content-type": "application/json"})
            assert response.status_code == 400, (path, response.text)
            assert "too deeply" in response.text

    with caplog.at_level("ERROR", logger="studentpack.serve"):
        run({"tiny": encoder}, body)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged for a client's mistake


def test_a_lone_surrogate_is_a_422_not_a_tokenizer_crash(
    encoder: TorchBackend, classifier: TorchBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON's \\u escapes carry lone surrogates that the real tokenizer cannot take (found by hypothesis)."""
    lone = b'"fine \\ud800 text"'
    bodies = {
        "/v1/embeddings": b'{"model": "tiny", "input": [' + lone + b"]}",
        "/v1/classify": b'{"model": "cls", "input": [[' + lone + b', "other"]]}',
        "/v2/models/tiny/infer": b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ['
        + lone
        + b"]}]}",
    }

    async def body(c: Client) -> None:
        for path, payload in bodies.items():
            response = await c.post(path, content=payload, headers={"content-type": "application/json"})
            assert response.status_code == 422 and "surrogate" in response.text, (path, response.text)

    with caplog.at_level("ERROR", logger="studentpack.serve"):
        run({"tiny": encoder, "cls": classifier}, body)
    assert not [r for r in caplog.records if r.exc_info]


def test_non_finite_outputs_get_one_answer_on_every_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    from tests.fake_server import FakeBackend

    class Broken(FakeBackend):
        """A model that returns NaN for texts holding the word 'nan' and infinity for 'inf'."""

        def row(self, ids: Any) -> np.ndarray:
            values = super().row(ids)
            if zlib.crc32(b"nan") % 1000 + 10 in ids:
                values[0] = np.nan
            if zlib.crc32(b"inf") % 1000 + 10 in ids:
                values[-1] = np.inf
            return values

    embedder, classifier = Broken(), Broken(kind="classifier")

    async def body(c: Client) -> None:
        requests = [
            c.post("/v1/embeddings", json={"model": "e", "input": ["fine", "nan here"]}),
            c.post("/v1/embeddings", json={"model": "e", "input": ["inf"], "encoding_format": "base64"}),
            c.post(
                "/v2/models/e/infer",
                json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["nan"]}]},
            ),
            c.post("/v1/classify", json={"model": "c", "input": ["so nan"]}),
        ]
        for request in requests:
            response = await request
            assert response.status_code == 500, response.text
            error = response.json()["error"]  # OIP errors are a string; ours carry a code as well
            assert "NaN or infinite" in (error if isinstance(error, str) else error["message"])
            assert isinstance(error, str) or error["code"] == "non_finite_output"
        ok = await c.post("/v1/embeddings", json={"model": "e", "input": ["fine"]})
        assert ok.status_code == 200

    with caplog.at_level("WARNING", logger="studentpack.serve"):
        run({"e": embedder, "c": classifier}, body)
    assert not [r for r in caplog.records if r.exc_info]


def test_a_client_that_leaves_takes_its_queued_work_with_it() -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)  # every batch waits at the gate until the test opens it

    async def main() -> None:
        app = create_app({"m": backend}, ServeConfig(max_batch=1, max_wait_ms=0))
        async with lifespan(app):
            await app.state.lifecycle.wait_loaded()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                first = asyncio.ensure_future(embed(client, "first holds the model", model="m"))
                while not backend.started.is_set():  # the first request's batch is in the model
                    await asyncio.sleep(0.01)
                sent: list[dict[str, Any]] = []
                body = json.dumps({"model": "m", "input": "second never runs"}).encode()
                messages = [{"type": "http.request", "body": body, "more_body": False}]

                async def receive() -> dict[str, Any]:
                    if messages:
                        return messages.pop()
                    await asyncio.sleep(0.2)  # the client hangs up while its text is queued
                    return {"type": "http.disconnect"}

                async def send(message: dict[str, Any]) -> None:
                    sent.append(message)

                scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                         "scheme": "http", "path": "/v1/embeddings", "raw_path": b"/v1/embeddings", "query_string": b"",
                         "root_path": "", "headers": [(b"content-type", b"application/json")],
                         "client": ("127.0.0.1", 1), "server": ("test", 80)}  # fmt: skip
                await app(scope, receive, send)
                assert sent[0]["status"] == 499
                gate.set()
                assert (await first).status_code == 200
                await asyncio.sleep(0.05)
                second_ids = backend.tokenize(["second never runs"]).ids[0]
                assert all(second_ids not in batch for batch in backend.batches), "the abandoned text was run"
                metrics = (await client.get("/metrics")).text
                assert 'studentpack_queue_depth{model="m"} 0.0' in metrics

    asyncio.run(main())
