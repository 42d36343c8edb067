"""Property tests for the request decoders: whatever a client sends, the answer is a typed request
whose texts the model can take, or an ApiError with a 4xx status; never another exception."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studentpack.serving.validation import ApiError, TextRequest, parse_classify, parse_embeddings, parse_infer

MAX_INPUTS = 8
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# any character, lone surrogates too: JSON's \u escapes can carry them, UTF-8 (and a tokenizer) cannot
texts = st.text(max_size=40) | st.text(st.characters(categories=["Cs", "Ll"]), max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)
inputs = json_values | texts | st.lists(texts, max_size=12) | st.lists(st.lists(texts, max_size=3), max_size=10)


def check_request(request: TextRequest) -> None:
    """What the model may be given: 1..MAX_INPUTS non-empty texts, each encodable as UTF-8."""
    assert isinstance(request.model, str) and request.model
    assert 1 <= len(request.texts) <= MAX_INPUTS
    for text in request.texts:
        assert isinstance(text, str) and text
        text.encode("utf-8")  # raises on a lone surrogate: the tokenizer could not take it either
    assert isinstance(request.truncate, bool)


def decoded(parse: Any, body: bytes) -> TextRequest | None:
    try:
        return parse(body)  # type: ignore[no-any-return]
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.message and "\n" not in exc.message
        return None


@PROPERTY_SETTINGS
@given(model=json_values | texts, value=inputs, extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_embeddings_decoder(model: Any, value: Any, extra: dict[str, Any]) -> None:
    body = json.dumps({**extra, "model": model, "input": value}).encode()
    request = decoded(lambda b: parse_embeddings(b, MAX_INPUTS), body)
    if request is not None:
        check_request(request)


@PROPERTY_SETTINGS
@given(model=texts, value=inputs, truncate=json_values)
def test_classify_decoder(model: str, value: Any, truncate: Any) -> None:
    body = json.dumps({"model": model, "input": value, "truncate": truncate}).encode()
    request = decoded(lambda b: parse_classify(b, MAX_INPUTS), body)
    if request is not None:
        check_request(request)
        pairs = request.pairs  # type: ignore[attr-defined]
        assert pairs is None or len(pairs) == len(request.texts)


@PROPERTY_SETTINGS
@given(data=json_values, shape=json_values, name=json_values, datatype=st.sampled_from(["BYTES", "FP32", None]))
def test_infer_decoder_json(data: Any, shape: Any, name: Any, datatype: Any) -> None:
    tensor = {"name": name, "datatype": datatype, "shape": shape, "data": data}
    body = json.dumps({"inputs": [tensor]}).encode()
    request = decoded(lambda b: parse_infer("m", b, None, "out", MAX_INPUTS), body)
    if request is not None:
        check_request(request)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=200), size=st.integers(-5, 300), count=st.integers(0, 10), cut=st.integers(-3, 400))
def test_infer_decoder_binary(raw: bytes, size: int, count: int, cut: int) -> None:
    tensor = {"name": "text", "datatype": "BYTES", "shape": [count], "parameters": {"binary_data_size": size}}
    header = json.dumps({"inputs": [tensor]}).encode()
    request = decoded(lambda b: parse_infer("m", b, str(len(header) if cut < 0 else cut), "out", MAX_INPUTS),
                      header + raw)  # fmt: skip
    if request is not None:
        check_request(request)


@PROPERTY_SETTINGS
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes(body: bytes) -> None:
    for parse in (lambda b: parse_embeddings(b, MAX_INPUTS), lambda b: parse_classify(b, MAX_INPUTS)):
        request = decoded(parse, body)
        if request is not None:
            check_request(request)


@PROPERTY_SETTINGS
@given(text=st.text(min_size=1).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_any_unicode_text_survives_the_decoders(text: str) -> None:
    """Every valid text comes back exactly, from JSON with or without \\u escapes and from binary BYTES."""
    for ascii_only in (True, False):
        body = json.dumps({"model": "m", "input": [text, text]}, ensure_ascii=ascii_only).encode()
        assert parse_embeddings(body, MAX_INPUTS).texts == [text, text]
    raw = text.encode("utf-8")
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw) + 4}}
    header = json.dumps({"inputs": [tensor]}).encode()
    body = header + struct.pack("<I", len(raw)) + raw
    assert parse_infer("m", body, str(len(header)), "out", MAX_INPUTS).texts == [text]


@pytest.mark.parametrize("parse", [parse_embeddings, parse_classify])
def test_huge_empty_and_deep_bodies(parse: Any) -> None:
    huge = "word " * 400_000  # 2 MB in one text: decoded whole (the body limit and truncation come later)
    assert parse(json.dumps({"model": "m", "input": huge}).encode(), MAX_INPUTS).texts == [huge]
    for body, status in [(b"", 400), (b'{"model": "m", "input": ""}', 422), (b"[" * 100_000 + b"]" * 100_000, 400),
                         (b'{"model": "m", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400)]:  # fmt: skip
        with pytest.raises(ApiError) as caught:
            parse(body, MAX_INPUTS)
        assert caught.value.status == status
