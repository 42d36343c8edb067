"""The OpenAPI 3.1 description of every endpoint, served at /openapi.json.

Built per server from its config and the names it serves, so limits (texts per request) and the
model names a request may use are part of the contract a fuzzer or client generator sees. The
schemas describe what the validators in `studentpack.serving.validation` accept: a body the schema forbids is
answered 4xx, never 5xx (the schemathesis test in tests/test_serve_fuzz.py holds us to that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from studentpack import __version__

JSON = "application/json"

_TEXT = {"type": "string", "minLength": 1}
_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_NUMBER: dict[str, Any] = {"type": "number"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_INDEX: dict[str, Any] = {"type": "integer", "minimum": 0}


def _obj(properties: dict[str, Any], required: Sequence[str] | None = None) -> dict[str, Any]:
    """An object schema; every property required unless `required` says which."""
    return {"type": "object", "required": list(properties if required is None else required), "properties": properties}


def _array(items: dict[str, Any], **limits: int) -> dict[str, Any]:
    return {"type": "array", "items": items, **limits}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style list answer: {"object": "list", "data": [item...], "model", "usage"}."""
    return _obj({"object": {"const": "list"}, "data": _array(_obj(item)), "model": _STR, "usage": _ref("Usage")})


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(oip: bool, statuses: Sequence[int]) -> dict[str, Any]:
    """Error answers: OIP endpoints use {"error": "..."}, the OpenAI-style ones {"error": {...}}."""
    schema = _ref("OipError" if oip else "OpenAIError")
    why = {
        400: "malformed body (not JSON, nested too deeply, bad binary framing)",
        401: "missing or wrong API key (when the server has one)",
        404: "unknown model or version",
        405: "method not allowed on this path",
        413: "body or number of texts over the server's limit",
        422: "well-formed but invalid values, or a text too long with truncate=false",
        499: "the client left before the answer (never seen by that client)",
        500: "the model produced NaN or infinite values (non_finite_output), or an internal error",
        503: "overloaded, queue deadline passed, model still loading, or shutting down (Retry-After)",
    }
    return {str(status): _json(schema, why[status]) for status in statuses}


_POST_ERRORS = (400, 401, 404, 405, 413, 422, 499, 500, 503)
_GET_ERRORS = (401, 404, 405)


def _names(models: Mapping[str, str | None], kind: str) -> dict[str, Any]:
    """The model names a request to a `kind` endpoint may use (a model still loading may be either)."""
    names = sorted(name for name, its_kind in models.items() if its_kind in (kind, None))
    return {"type": "string", "enum": names} if names else {"type": "string", "minLength": 1}


def document(models: Mapping[str, str | None], max_inputs: int) -> dict[str, Any]:
    """The OpenAPI document for a server serving `models` (name -> embedding, classifier or None while
    loading), taking up to `max_inputs` texts per request."""
    texts = {"oneOf": [_TEXT, _array(_TEXT, minItems=1, maxItems=max_inputs)]}
    pair = _array(_TEXT, minItems=2, maxItems=2)
    schemas: dict[str, Any] = {
        "OpenAIError": _obj({"error": _obj({"message": _STR, "type": _STR, "code": _STR})}),
        "OipError": _obj({"error": _STR}),
        "Usage": _obj({"prompt_tokens": _INT, "total_tokens": _INT}),
        "Parameters": {"type": "object", "additionalProperties": True},
        "EmbeddingsRequest": _obj(
            {
                "model": _names(models, "embedding"),
                "input": texts,
                "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
                "truncate": {
                    "type": "boolean",
                    "default": True,
                    "description": "cut texts over the model's length (else 422)",
                },
            },
            required=["model", "input"],
        ),
        "EmbeddingsResponse": _list_of(
            {
                "object": {"const": "embedding"},
                "embedding": {"oneOf": [_array(_NUMBER), {"type": "string", "description": "base64, float32 LE"}]},
                "index": _INDEX,
            }
        ),
        "ClassifyRequest": _obj(
            {
                "model": _names(models, "classifier"),
                "input": {"oneOf": [*texts["oneOf"], _array(pair, minItems=1, maxItems=max_inputs)]},
                "truncate": {"type": "boolean", "default": True},
            },
            required=["model", "input"],
        ),
        "ClassifyResponse": _list_of(
            {
                "index": _INDEX,
                "label": _STR,
                "score": _NUMBER,
                "scores": {"type": "object", "additionalProperties": _NUMBER},
                "logits": _array(_NUMBER),
            }
        ),
        "InferRequest": _obj(
            {
                "id": _STR,
                "parameters": _obj({"truncate": _BOOL, "binary_data_output": _BOOL}, required=[]),
                "inputs": _array(
                    _obj(
                        {
                            "name": {"const": "text"},
                            "datatype": {"const": "BYTES"},
                            "shape": _array({"type": "integer", "minimum": 1}, minItems=1, maxItems=1),
                            "data": _array(_TEXT, minItems=1, maxItems=max_inputs),
                            "parameters": _ref("Parameters"),
                        },
                        required=["name", "datatype", "shape", "data"],
                    ),
                    minItems=1,
                    maxItems=1,
                ),
                "outputs": _array(_obj({"name": _STR, "parameters": _ref("Parameters")}, required=["name"])),
            },
            required=["inputs"],
        ),
        "InferResponse": _obj(
            {
                "model_name": _STR,
                "model_version": _STR,
                "id": _STR,
                "outputs": _array(
                    _obj(
                        {
                            "name": _STR,
                            "datatype": {"const": "FP32"},
                            "shape": _array(_INT),
                            "data": _array(_NUMBER),
                            "parameters": _ref("Parameters"),
                        },
                        required=["name", "datatype", "shape"],
                    )
                ),
            },
            required=["model_name", "outputs"],
        ),
        "ServerMetadata": _obj({"name": _STR, "version": _STR, "extensions": _array(_STR)}),
        "ModelMetadata": _obj(
            {
                "name": _STR,
                "versions": _array(_STR),
                "platform": _STR,
                "inputs": _array({"type": "object"}),
                "outputs": _array({"type": "object"}),
                "parameters": _ref("Parameters"),
            },
            required=["name", "versions", "platform", "inputs", "outputs"],
        ),
        "ModelList": _obj(
            {
                "object": {"const": "list"},
                "data": _array(_obj({"id": _STR, "object": {"const": "model"}, "state": _STR})),
            }
        ),
    }
    health = {"200": {"description": "yes"}, "503": {"description": "not (yet, or no longer)"}}

    def post(summary: str, request: str, response: str, oip: bool, params: list[Any]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "parameters": params,
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref(request)}}},
                "responses": {
                    "200": _json(_ref(response), "the outputs, in input order"),
                    **_errors(oip, _POST_ERRORS),
                },
            }
        }

    def get(summary: str, ok: dict[str, Any], oip: bool, params: list[Any] | None = None) -> dict[str, Any]:
        return {
            "get": {"summary": summary, "parameters": params or [], "responses": {**ok, **_errors(oip, _GET_ERRORS)}}
        }

    model_params = [_NAME_PARAM]
    versioned_params = [_NAME_PARAM, _VERSION_PARAM]
    infer_summary = "OIP v2 inference: one BYTES input 'text' (JSON, or Triton's binary tensor extension)"
    paths: dict[str, Any] = {
        "/v1/embeddings": post(
            "OpenAI-style sentence embeddings", "EmbeddingsRequest", "EmbeddingsResponse", False, []
        ),
        "/v1/classify": post(
            "Labels and scores for texts or text pairs", "ClassifyRequest", "ClassifyResponse", False, []
        ),
        "/v2/models/{name}/infer": post(infer_summary, "InferRequest", "InferResponse", True, model_params),
        "/v2/models/{name}/versions/{version}/infer": post(
            infer_summary, "InferRequest", "InferResponse", True, versioned_params
        ),
        "/v2/health/live": {"get": {"summary": "the process is up", "responses": health}},
        "/v2/health/ready": {
            "get": {"summary": "every model is loaded and the server is not draining", "responses": health}
        },
        "/v2": get("OIP server metadata", {"200": _json(_ref("ServerMetadata"), "name, version")}, True),
        "/v2/models/{name}": get(
            "OIP model metadata", {"200": _json(_ref("ModelMetadata"), "the model")}, True, model_params
        ),
        "/v2/models/{name}/versions/{version}": get(
            "OIP model metadata", {"200": _json(_ref("ModelMetadata"), "the model")}, True, versioned_params
        ),
        "/v2/models/{name}/ready": get("the model is loaded", health, True, model_params),
        "/v2/models/{name}/versions/{version}/ready": get("the model is loaded", health, True, versioned_params),
        "/v1/models": get("served models and their settings", {"200": _json(_ref("ModelList"), "the models")}, False),
        "/metrics": get(
            "Prometheus metrics",
            {
                "200": {
                    "description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
            False,
        ),
        "/openapi.json": get("this document", {"200": _json({"type": "object"}, "OpenAPI 3.1")}, False),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "studentpack serve",
            "version": __version__,
            "description": "Open Inference Protocol v2, OpenAI-style /v1/embeddings and /v1/classify.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
