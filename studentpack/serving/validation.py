"""Request bodies -> typed requests, or an ApiError with a 4xx status and a one-line message.

Every way a body can be wrong ends here as a client error; nothing a client sends reaches the
model unchecked. Codes: 400 malformed or unsupported, 404 unknown model, 413 too large (body or
number of inputs), 422 well-formed but invalid values (wrong types, empty inputs, too-long text
with truncate=false).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def invalid(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(422, message, code)


@dataclass(frozen=True)
class TextRequest:
    model: str
    texts: list[str]
    truncate: bool


@dataclass(frozen=True)
class ClassifyRequest(TextRequest):
    pairs: list[str] | None  # second texts of sentence pairs (cross-encoders), else None


@dataclass(frozen=True)
class EmbeddingsRequest(TextRequest):
    encoding_format: str  # float | base64


@dataclass(frozen=True)
class InferRequest(TextRequest):
    id: str | None
    binary_output: bool  # Triton's binary tensor extension for the output


def parse_json(body: bytes) -> Any:
    if not body:
        raise ApiError(400, "the request body is empty; send a JSON object", "invalid_json")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", "invalid_json") from exc
    except RecursionError:  # `[[[[...` thousands deep: the decoder's recursion limit, not a server fault
        raise ApiError(400, "the request body nests JSON arrays or objects too deeply", "invalid_json") from None


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid(f"the request body must be a JSON object, got {_type(data)}")
    return data


def _type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise invalid(f"{key} must be true or false, got {_type(value)}")
    return value


def texts_from(value: Any, field: str, max_inputs: int) -> list[str]:
    """A string or a non-empty list of non-empty strings, at most max_inputs of them."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise invalid(f"{field} must be a string or an array of strings, got {_type(value)}")
    if not value:
        raise invalid(f"{field} is an empty array; send at least one text", "empty_input")
    if len(value) > max_inputs:
        raise ApiError(413, f"{field} has {len(value)} texts; at most {max_inputs} per request", "too_many_inputs")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise invalid(f"{field}[{i}] must be a string, got {_type(text)}")
        if not text:
            raise invalid(f"{field}[{i}] is an empty string", "empty_input")
        if not text.isascii():
            _require_utf8(text, f"{field}[{i}]")
    return value


def _require_utf8(text: str, where: str) -> None:
    """JSON's \\u escapes can carry a lone surrogate, which no tokenizer can take: refuse it here."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise invalid(
            f"{where} holds a lone surrogate (\\u{ord(bad):04x}); send valid Unicode", "invalid_text"
        ) from None


def model_name(data: dict[str, Any]) -> str:
    name = data.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("model must be the name of a served model (see GET /v1/models)")
    return name


def parse_embeddings(body: bytes, max_inputs: int) -> EmbeddingsRequest:
    """OpenAI-style: {"model", "input": str | [str], "encoding_format"?, "truncate"?}."""
    data = _object(parse_json(body))
    if "input" not in data:
        raise invalid("input is missing: a string or an array of strings")
    fmt = data.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise invalid(f"encoding_format must be float or base64, got {fmt!r}")
    return EmbeddingsRequest(
        model=model_name(data),
        texts=texts_from(data["input"], "input", max_inputs),
        truncate=_bool(data, "truncate", True),
        encoding_format=fmt,
    )


def parse_classify(body: bytes, max_inputs: int) -> ClassifyRequest:
    """{"model", "input": str | [str] | [[str, str]], "truncate"?}: texts, or sentence pairs (all one or the other)."""
    data = _object(parse_json(body))
    if "input" not in data:
        raise invalid("input is missing: a string, an array of strings, or an array of [text, text] pairs")
    value = data["input"]
    pairs = None
    if isinstance(value, list) and value and isinstance(value[0], list):
        if len(value) > max_inputs:
            raise ApiError(413, f"input has {len(value)} pairs; at most {max_inputs} per request", "too_many_inputs")
        for i, item in enumerate(value):
            if not isinstance(item, list) or len(item) != 2:
                raise invalid(f"input[{i}] must be a [text, text] pair like input[0]")
        firsts = texts_from([a for a, _ in value], "input[*][0]", max_inputs)
        pairs = texts_from([b for _, b in value], "input[*][1]", max_inputs)
    else:
        firsts = texts_from(value, "input", max_inputs)
    return ClassifyRequest(model_name(data), firsts, _bool(data, "truncate", True), pairs)


def parse_infer(model: str, body: bytes, header_length: str | None, output_name: str, max_inputs: int) -> InferRequest:
    """Open Inference Protocol v2 infer request: one BYTES input of texts, JSON or binary tensor data."""
    json_part, binary = _split_binary(body, header_length)
    data = _object(parse_json(json_part))
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise invalid("inputs must be an array holding one tensor: the BYTES input 'text'")
    tensor = inputs[0]
    if tensor.get("name") != "text":
        raise invalid(f"unknown input {tensor.get('name')!r}; this model takes one input named 'text'")
    if tensor.get("datatype") != "BYTES":
        raise invalid(f"input 'text' must have datatype BYTES, got {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise invalid("input 'text' needs a shape: an array of non-negative integers, e.g. [2]")
    count = 1
    for dim in shape:
        count *= dim
    params = _params(tensor, "input 'text'")
    if "binary_data_size" in params:
        elements = _bytes_elements(binary, params["binary_data_size"])
    elif "data" in tensor:
        elements = _flatten(tensor["data"])
    else:
        raise invalid("input 'text' has no data")
    if len(elements) != count:
        raise invalid(f"input 'text' has shape {shape} ({count} elements) but {len(elements)} data elements")
    texts = texts_from(elements, "input 'text'", max_inputs)
    request_params = _params(data, "request")
    truncate = _bool(request_params, "truncate", True)
    binary_output = _bool(request_params, "binary_data_output", False)
    outputs = data.get("outputs", [])
    if not isinstance(outputs, list):
        raise invalid("outputs must be an array")
    for out in outputs:
        if not isinstance(out, dict) or out.get("name") != output_name:
            name = out.get("name") if isinstance(out, dict) else out
            raise invalid(f"unknown output {name!r}; this model has one output named {output_name!r}")
        binary_output = _bool(_params(out, f"output {output_name!r}"), "binary_data", binary_output)
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise invalid("id must be a string")
    return InferRequest(model, texts, truncate, request_id, binary_output)


def _params(holder: dict[str, Any], where: str) -> dict[str, Any]:
    params = holder.get("parameters", {})
    if not isinstance(params, dict):
        raise invalid(f"{where}: parameters must be an object")
    return params


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise invalid(f"input 'text' data must be an array of strings, got {_type(data)}")
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        raise ApiError(
            400, f"Inference-Header-Content-Length {header_length!r} does not fit the body", "invalid_binary"
        )
    return body[:n], body[n:]


def _bytes_elements(binary: bytes, size: Any) -> list[str]:
    """Triton's BYTES serialisation: per element, a 4-byte little-endian length and the bytes."""
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary):
        raise ApiError(400, "binary_data_size of input 'text' does not fit the binary data", "invalid_binary")
    raw, pos, out = binary[:size], 0, []
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ApiError(400, "truncated BYTES element in input 'text'", "invalid_binary")
        (length,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + length > len(raw):
            raise ApiError(400, "truncated BYTES element in input 'text'", "invalid_binary")
        try:
            out.append(raw[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ApiError(400, "input 'text' holds bytes that are not UTF-8", "invalid_binary") from exc
        pos += length
    return out
