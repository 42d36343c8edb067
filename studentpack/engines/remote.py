"""TextEncoder / TextClassifier over a model served by `studentpack serve`, so `studentpack eval URL`
scores a served model with the same code as a local one.

How a URL names the model:
  http://HOST:PORT/v2/models/NAME       the model's own OIP URL (canonical; works behind a path prefix:
                                        http://HOST/prefix/v2/models/NAME)
  http://HOST:PORT/NAME                 shorthand
  http://HOST:PORT                      the server's only model (an error listing them if it has several)

Embeddings come from POST /v1/embeddings (base64 float32, so values arrive bit-exact), logits from
POST /v1/classify. The API key, if the server wants one, is the `api_key` argument or
$STUDENTPACK_API_KEY. Overloaded answers (503 + Retry-After) are retried a few times.

Any other Open Inference Protocol v2 server (Triton running `studentpack export --triton`'s text
model) has no /v1/models: the model is then read from GET /v2/models/NAME (output `embedding` or
`logits`, its width) and run through POST /v2/models/NAME/infer with the texts as a BYTES tensor of
shape [N, 1]. Such a server does not say how many texts it cut, nor, unless its config carries a
`max_length` parameter (Triton's GET .../config), at how many tokens; a `source_sha256` parameter
there names the variant directory it was built from (see `oip_server_facts`).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from studentpack.engines.base import length_sorted_batches, scatter_rows
from studentpack.ground.errors import UserError
from studentpack.ground.protocol import API_KEY_ENV, MAX_LENGTH_PARAMETER, SOURCE_SHA_PARAMETER

log = logging.getLogger(__name__)

_OIP_MODEL = re.compile(r"^(?P<prefix>.*)/v2/models/(?P<name>[^/]+)$")
_RETRIES = 5


def parse_url(url: str) -> tuple[str, str | None]:
    """URL -> (server base URL, model name or None for 'the only model')."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{url}: expected http(s)://HOST:PORT[/v2/models/NAME]")
    if parts.query or parts.fragment:
        raise UserError(f"{url}: name the model in the path (http://HOST:PORT/v2/models/NAME), not a query")
    root = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    match = _OIP_MODEL.match(path)
    if match:
        return root + match["prefix"], match["name"]
    segments = [s for s in path.split("/") if s]
    if not segments:
        return root, None
    if len(segments) == 1 and segments[0] not in ("v1", "v2"):
        return root, segments[0]
    raise UserError(f"{url}: expected http(s)://HOST:PORT/v2/models/NAME or http(s)://HOST:PORT/NAME")


class HttpEncoder:
    """encode() / predict() through the server's endpoints; one HTTP client, a few requests in flight."""

    def __init__(
        self,
        base: str,
        name: str | None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        concurrency: int = 4,
        max_length: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "").strip() or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.base = base
        self.concurrency = max(1, concurrency)
        self._client = httpx.Client(base_url=base, headers=headers, timeout=timeout_s, transport=transport)
        try:
            model = self._pick_model(name)
        except BaseException:
            self._client.close()
            raise
        self.protocol: str = model.get("protocol", "studentpack")
        self.name: str = model["id"]
        self.kind: str = model["kind"]
        self.dim = int(model["dim"])
        self.max_length = int(model["max_length"])
        self.labels: list[str] = list(model.get("labels", []))
        self.sha256: str | None = model.get("sha256")  # the served directory's content hash, when told
        self.served_info = {k: model.get(k) for k in ("platform", "device", "providers", "threads") if k in model}
        self.description = f"{base}/v2/models/{self.name}"
        self.truncated = 0  # texts the server cut, summed over requests (encode's threads add to it)
        self._truncated_lock = threading.Lock()
        if max_length is not None and max_length != self.max_length:
            log.warning(
                "%s cuts texts at %d tokens (the server's setting), not the %d asked for",
                self.description,
                self.max_length,
                max_length,
            )

    # --- protocol -----------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if self.kind != "embedding":
            raise UserError(f"{self.description} is a classifier; it has no sentence embeddings")
        return self._map(list(texts), None, batch_size, self._embed)

    def predict(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
        *,
        text_pairs: Sequence[str] | None = None,
    ) -> np.ndarray:
        if self.kind != "classifier":
            raise UserError(f"{self.description} is an embedding model, not a classifier")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
        return self._map(list(texts), None if text_pairs is None else list(text_pairs), batch_size, self._classify)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -----------------------------------------------------------------------------

    def _map(self, texts: list[str], pairs: list[str] | None, batch_size: int, call: Any) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = texts if pairs is None else [a + " " + b for a, b in zip(texts, pairs, strict=True)]
        batches = length_sorted_batches(keys, batch_size)
        jobs = [([texts[i] for i in b.order], None if pairs is None else [pairs[i] for i in b.order]) for b in batches]
        if self.concurrency == 1 or len(jobs) == 1:
            outputs = [call(*job) for job in jobs]
        else:
            with ThreadPoolExecutor(self.concurrency) as pool:
                outputs = list(pool.map(lambda job: call(*job), jobs))
        return scatter_rows(batches, outputs, len(texts))

    def _embed(self, texts: list[str], _pairs: None) -> np.ndarray:
        if self.protocol == "oip":
            return self._infer(texts, "embedding")
        body = self._post("/v1/embeddings", {"model": self.name, "input": texts, "encoding_format": "base64"})
        rows = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in body["data"]]
        return np.stack(rows).astype(np.float32)  # (B, D)

    def _classify(self, texts: list[str], pairs: list[str] | None) -> np.ndarray:
        if self.protocol == "oip":
            if pairs is not None:
                raise UserError(
                    f"{self.description} takes single texts over OIP; sentence pairs need studentpack serve"
                )
            return self._infer(texts, "logits")
        payload = texts if pairs is None else [[a, b] for a, b in zip(texts, pairs, strict=True)]
        body = self._post("/v1/classify", {"model": self.name, "input": payload})
        return np.asarray([item["logits"] for item in body["data"]], dtype=np.float32)  # (B, C)

    def _infer(self, texts: list[str], output: str) -> np.ndarray:
        """OIP v2 infer: a BYTES tensor [N, 1] in, the named FP32 output (N, D) back."""
        tensor = {"name": "text", "datatype": "BYTES", "shape": [len(texts), 1], "data": texts}
        body = self._post(f"/v2/models/{self.name}/infer", {"inputs": [tensor], "outputs": [{"name": output}]})
        outputs = {o.get("name"): o for o in body.get("outputs") or [] if isinstance(o, dict)}
        if output not in outputs or "data" not in outputs[output]:
            raise UserError(f"{self.description} answered without the output {output!r}")
        return np.asarray(outputs[output]["data"], dtype=np.float32).reshape(len(texts), -1)  # (B, D)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(_RETRIES + 1):
            response = self._request("POST", path, json=payload)
            if response.status_code == 503 and "retry-after" in response.headers and attempt < _RETRIES:
                time.sleep(min(float(response.headers["retry-after"]), 5.0))
                continue
            body = self._json(response, path)
            with self._truncated_lock:  # += on an attribute is a read and a write: threads would lose counts
                self.truncated += int(response.headers.get("x-truncated-inputs", 0))
            return body
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach {self.base}{path}: {exc}") from exc

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        if response.status_code == 401:
            raise UserError(f"{self.base} wants an API key: set ${API_KEY_ENV}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            message = error.get("message") if isinstance(error, dict) else error
            raise UserError(f"{self.base}{path} answered {response.status_code}: {message or response.text[:200]}")
        if not isinstance(body, dict):
            raise UserError(f"{self.base}{path} did not answer with a JSON object")
        return body

    def _pick_model(self, name: str | None) -> dict[str, Any]:
        listing = self._request("GET", "/v1/models")
        if listing.status_code == 404:  # not studentpack serve: another OIP v2 server (Triton)
            return self._oip_model(name)
        models = self._json(listing, "/v1/models").get("data", [])
        names = [m.get("id") for m in models]
        if name is None:
            if len(models) != 1:
                raise UserError(f"{self.base} serves {len(models)} models ({', '.join(names)}); name one in the URL")
            model = models[0]
        else:
            matches = [m for m in models if m.get("id") == name]
            if not matches:
                raise UserError(f"{self.base} serves no model {name!r} (it serves: {', '.join(names) or 'none'})")
            model = matches[0]
        if model.get("state") != "ready":
            raise UserError(f"model {model.get('id')} at {self.base} is not ready ({model.get('state')})")
        return model

    def _oip_model(self, name: str | None) -> dict[str, Any]:
        """The model's description from OIP metadata: kind and width from its output tensor."""
        if name is None:
            raise UserError(f"{self.base} is not studentpack serve; name the model: {self.base}/v2/models/NAME")
        meta = self._json(self._request("GET", f"/v2/models/{name}"), f"/v2/models/{name}")
        ready = self._request("GET", f"/v2/models/{name}/ready")
        if ready.status_code != 200:
            raise UserError(f"model {name} at {self.base} is not ready (HTTP {ready.status_code})")
        outputs = {o.get("name"): o for o in meta.get("outputs") or [] if isinstance(o, dict)}
        inputs = [i.get("name") for i in meta.get("inputs") or [] if isinstance(i, dict)]
        kind = "embedding" if "embedding" in outputs else "classifier" if "logits" in outputs else None
        if kind is None or inputs != ["text"]:
            raise UserError(
                f"{self.base}/v2/models/{name} takes {inputs} and gives {sorted(str(k) for k in outputs)}; "
                "a text model takes 'text' and gives 'embedding' or 'logits' (studentpack export --triton writes one)"
            )
        shape = outputs["embedding" if kind == "embedding" else "logits"].get("shape") or [-1]
        dim = int(shape[-1])
        facts = oip_server_facts(self._client, name)
        labels = [f"LABEL_{i}" for i in range(dim)] if kind == "classifier" else []
        model = {
            "id": name,
            "kind": kind,
            "dim": dim,
            "max_length": facts.get("max_length") or 128,
            "labels": labels,
            "protocol": "oip",
            "platform": meta.get("platform"),
        }
        return {**model, **{k: facts[k] for k in ("sha256", "device") if facts.get(k)}}


def oip_server_facts(client: httpx.Client, name: str) -> dict[str, Any]:
    """What another OIP v2 server tells of itself and of model `name`, as far as it does.

    server: its name from GET /v2 ("triton"), else "oip". From Triton's GET /v2/models/NAME/config
    extension: the `max_length` and `source_sha256` parameters that `studentpack export --triton`
    writes (sha256: the content hash of the variant directory the model was built from, the same hash
    `studentpack serve` reports, so reports can put both servers of one variant side by side), and
    the device its instances run on.
    """
    facts: dict[str, Any] = {"server": "oip"}
    try:
        answer = client.get("/v2")
        server = answer.json() if answer.status_code == 200 else {}
        if isinstance(server, dict):
            facts["server"] = str(server.get("name") or "oip")
        answer = client.get(f"/v2/models/{name}/config")
        config = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return facts
    if not isinstance(config, dict):
        return facts
    params = config.get("parameters") or {}
    if isinstance(params, dict):
        told = {
            "max_length": _int(_parameter(params, MAX_LENGTH_PARAMETER)),
            "sha256": _parameter(params, SOURCE_SHA_PARAMETER) or None,
        }
        facts.update({k: v for k, v in told.items() if v is not None})
    kinds = {g.get("kind") for g in config.get("instance_group") or [] if isinstance(g, dict)}
    if kinds == {"KIND_CPU"}:
        facts["device"] = "cpu"
    elif "KIND_GPU" in kinds:
        facts["device"] = "cuda"
    return facts


def _parameter(params: dict[str, Any], key: str) -> Any:
    entry = params.get(key)
    return entry.get("string_value") if isinstance(entry, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value) or None
    except (TypeError, ValueError):
        return None


def open_remote(url: str, max_length: int = 128, api_key: str | None = None, **kwargs: Any) -> HttpEncoder:
    """A TextEncoder / TextClassifier for a served model (see the module docstring for URL forms)."""
    base, name = parse_url(url)
    options = {k: kwargs[k] for k in ("timeout_s", "concurrency", "transport") if k in kwargs}
    return HttpEncoder(base, name, api_key=api_key, max_length=max_length, **options)
