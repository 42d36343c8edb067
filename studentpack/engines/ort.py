"""ONNX Runtime for exported variants: providers, threads, tokenizer -> feeds, warm-up, scoring.

Two layers, both small:

- `OrtSession`: one `onnxruntime.InferenceSession` over a variant's `model.onnx` plus its tokenizer.
  Serving and benchmarks use it directly::

      session = OrtSession.open("runs/x/onnx/int8-dynamic", device="cpu", threads=2)
      feeds = session.tokenize(["a sentence", "another one"])   # {"input_ids": (B, T) int64, ...}
      feeds = session.tokenize(["a premise"], ["a hypothesis"])  # sentence pairs (cross-encoders)
      out = session.run(feeds)                                  # {"token_embeddings": (B, T, H),
                                                                #  "sentence_embedding": (B, H)}
      out = session.run_texts(["a sentence"], ["sentence_embedding"])

- `OrtEncoder`: the encode protocol of `studentpack.engines` (`encode` / `predict`, `labels`,
  `truncated`, `max_length`, `description`) over an `OrtSession`, so `studentpack eval <variant dir>`
  and the export accuracy gates score ONNX with the same code as PyTorch. `open_onnx` builds one.

A variant directory holds `model.onnx`, the tokenizer files and `export.json` (written by
`studentpack export --onnx`); its `kind` ("embedding" or "classifier"), `labels`, `outputs` and
`max_length` tell the session what the graph computes.

CUDA is never a silent fallback: asking for `cuda` raises `GpuUnavailableError` when this
onnxruntime has no CUDAExecutionProvider, or when the session came up without it (onnxruntime-gpu
drops to CPU with only a log line when the CUDA libraries fail to load).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.engines.base import DEFAULT_MAX_LENGTH, LocalEncoder
from studentpack.errors import GpuUnavailableError, UserError
from studentpack.pooling import l2_normalize_np

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
MODEL_FILE = "model.onnx"
EXPORT_FILE = "export.json"
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def parse_device(device: str) -> tuple[str, int]:
    """`cpu`, `cuda` or `cuda:N` -> ("cpu" | "cuda", device id)."""
    if device == "cpu":
        return "cpu", 0
    if device == "cuda" or device.startswith("cuda:"):
        index = device.partition(":")[2] or "0"
        if not index.isdigit():
            raise UserError(f"unknown device {device!r} (use cpu, cuda or cuda:N)")
        return "cuda", int(index)
    raise UserError(f"unknown device {device!r} (use cpu, cuda or cuda:N)")


def check_providers(device: str, providers: Sequence[str], where: str = "this onnxruntime") -> None:
    """Raise GpuUnavailableError when CUDA was asked for and `providers` lacks CUDAExecutionProvider."""
    kind, _ = parse_device(device)
    if kind == "cuda" and CUDA_PROVIDER not in providers:
        raise GpuUnavailableError(
            f"device {device} was asked for but {where} has no {CUDA_PROVIDER} (providers: {', '.join(providers)}); "
            "install studentpack[gpu] (onnxruntime-gpu, not onnxruntime) on a machine with CUDA"
        )


def session_providers(device: str) -> list[Any]:
    kind, index = parse_device(device)
    if kind == "cuda":
        _preload_cuda_libraries()
        return [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]
    return [CPU_PROVIDER]


@functools.cache
def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu >= 1.21 loads CUDA/cuDNN from torch's or the nvidia-* wheels, so no system CUDA
    install is needed (a container with PyPI's torch has them); older versions rely on the loader path."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if callable(preload):
        preload()


def read_export_info(path: Path) -> dict[str, Any]:
    """The variant's export.json (empty when the directory holds a bare model.onnx)."""
    file = path / EXPORT_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from exc
    return data if isinstance(data, dict) else {}


class OrtSession:
    """An InferenceSession with its tokenizer: texts -> feeds -> named outputs."""

    def __init__(
        self,
        model_path: str | Path,
        tokenizer: Any,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        warmup: bool = True,
        info: dict[str, Any] | None = None,
        spinning: bool = True,
    ) -> None:
        """`threads`: intra-op threads (None: onnxruntime's default, one per core).

        `spinning=False` stops idle intra-op threads from busy-waiting for the next run: slower to
        start each run by a little, but they no longer take cores from other threads between runs
        (a server's event loop, a co-located client, other sessions on a small machine).

        `max_length` is capped at the model's own limit (`info["max_length"]`) when known.
        """
        import onnxruntime as ort

        self.path = Path(model_path)
        if not self.path.is_file():
            raise UserError(f"ONNX model not found: {self.path}")
        self.device = device
        check_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 0:
                raise UserError(f"threads must be >= 0, got {threads}")
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        check_external_data(self.path)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=session_providers(device))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UserError(f"onnxruntime cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        self.providers: list[str] = list(self.session.get_providers())
        check_providers(device, self.providers, where=f"the session for {self.path}")
        self.info = dict(info or {})
        self.tokenizer = tokenizer
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._input_types = {i.name: _INT_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        model_max = int(self.info.get("max_length") or 0) or _tokenizer_max(tokenizer)
        self.max_length = min(max_length, model_max) if model_max else max_length
        self.truncated = 0
        if warmup:
            self.warmup()

    @classmethod
    def open(
        cls,
        variant_dir: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        warmup: bool = True,
        spinning: bool = True,
    ) -> OrtSession:
        """A session over a variant directory (model.onnx + tokenizer files + export.json)."""
        from studentpack import adapter

        path = Path(variant_dir)
        if not (path / MODEL_FILE).is_file():
            raise UserError(f"{path} is not an exported variant: it has no {MODEL_FILE}")
        tokenizer = adapter.load_tokenizer(path)
        info = read_export_info(path)
        return cls(path / MODEL_FILE, tokenizer, device, threads, max_length, warmup, info, spinning)

    @property
    def kind(self) -> str:
        """ "embedding" or "classifier", from export.json or else from the graph's outputs."""
        kind = self.info.get("kind")
        if kind in ("embedding", "classifier"):
            return str(kind)
        return "classifier" if "logits" in self.output_names else "embedding"

    def tokenize(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Texts (or sentence pairs) -> padded feeds (B, T) for this graph's inputs, cut at `max_length`."""
        if not texts:
            raise UserError("no texts to encode")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
        pairs = None if text_pairs is None else list(text_pairs)
        enc = self.tokenizer(list(texts), pairs, padding=True, truncation=True, max_length=self.max_length)
        lengths = [int(sum(mask)) for mask in enc["attention_mask"]]  # real tokens per row
        self.truncated += self._count_truncated(texts, pairs, lengths)
        feeds: dict[str, np.ndarray] = {}
        for name in self.input_names:
            if name in enc:
                feeds[name] = np.asarray(enc[name], dtype=self._input_types[name])
            elif name == "token_type_ids":
                feeds[name] = np.zeros_like(np.asarray(enc["input_ids"]), dtype=self._input_types[name])
            else:
                raise UserError(f"{self.path} needs input {name!r}, which the tokenizer does not produce")
        return feeds

    def _count_truncated(self, texts: Sequence[str], pairs: list[str] | None, lengths: list[int]) -> int:
        """Texts longer than max_length: only rows that reached max_length can have been cut."""
        full = [i for i, n in enumerate(lengths) if n >= self.max_length]
        if not full:
            return 0
        seconds = None if pairs is None else [pairs[i] for i in full]
        untruncated = self.tokenizer([texts[i] for i in full], seconds, truncation=False)["input_ids"]
        return sum(len(ids) > self.max_length for ids in untruncated)

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Already-tokenised feeds (as `tokenize` makes them) -> {output name: array}."""
        names = list(outputs) if outputs else self.output_names
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise UserError(f"{self.path} has no output {missing[0]!r} (outputs: {', '.join(self.output_names)})")
        values = self.session.run(names, {k: v for k, v in feeds.items() if k in self.input_names})
        return dict(zip(names, values, strict=True))

    def run_texts(self, texts: Sequence[str], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return self.run(self.tokenize(texts), outputs)

    def warmup(self, rounds: int = 2) -> None:
        """Run a small batch so the first real request does not pay for allocation and kernel choice."""
        feeds = {name: np.ones((2, 8), dtype=self._input_types[name]) for name in self.input_names}
        if "token_type_ids" in feeds:
            feeds["token_type_ids"][:] = 0
        for _ in range(rounds):
            self.session.run(None, feeds)


class OrtEncoder(LocalEncoder):
    """TextEncoder / TextClassifier over an OrtSession (the protocol in `studentpack.engines`)."""

    def __init__(self, session: OrtSession, description: str) -> None:
        self.session = session
        self.description = description
        self.max_length = session.max_length
        self.labels: list[str] = _labels(session) if session.kind == "classifier" else []

    @property
    def truncated(self) -> int:
        return self.session.truncated

    def _embed(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if "sentence_embedding" in self.session.output_names:
            return self.session.run(feeds, ["sentence_embedding"])["sentence_embedding"]
        states = self.session.run(feeds, [self.session.output_names[0]])[self.session.output_names[0]]  # (B, T, H)
        mask = feeds["attention_mask"][..., None].astype(states.dtype)  # (B, T, 1)
        return l2_normalize_np((states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9))  # (B, H)

    def _run_batch(self, firsts: list[str], seconds: list[str] | None, pool: bool) -> np.ndarray:
        feeds = self.session.tokenize(firsts, seconds)
        return self._embed(feeds) if pool else self.session.run(feeds, ["logits"])["logits"]


def open_onnx(
    path: Path,
    device: str = "cpu",
    max_length: int = DEFAULT_MAX_LENGTH,
    threads: int | None = None,
    **_: Any,
) -> OrtEncoder:
    """An OrtEncoder over an exported variant directory (what `encoders.open_model` calls)."""
    session = OrtSession.open(path, device=device, threads=threads, max_length=max_length)
    variant = session.info.get("variant")
    return OrtEncoder(session, f"{path}" + (f" ({variant})" if variant else ""))


def _labels(session: OrtSession) -> list[str]:
    labels = session.info.get("labels")
    if labels:
        return [str(label) for label in labels]
    config = session.path.parent / "config.json"
    if config.is_file():
        id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
        if id2label:
            return [str(id2label.get(str(i), i)) for i in range(len(id2label))]
    width = session.session.get_outputs()[session.output_names.index("logits")].shape[-1]
    return [f"LABEL_{i}" for i in range(width if isinstance(width, int) else 2)]


def check_external_data(model_path: Path) -> None:
    """Refuse a graph whose external tensor data lies outside its own directory (a hostile file could
    point at ../../etc/shadow). Recent onnxruntime refuses too; this does not depend on its version."""
    import onnx

    try:
        graph = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:
        raise UserError(f"cannot read {model_path}: {str(exc).splitlines()[0]}") from exc
    home = model_path.parent.resolve()
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key != "location":
                continue
            target = (home / entry.value).resolve()
            if Path(entry.value).is_absolute() or not target.is_relative_to(home):
                raise UserError(
                    f"{model_path}: tensor {tensor.name} keeps its data at {entry.value!r}, outside the model's "
                    "directory; refusing to read it"
                )


def _tokenizer_max(tokenizer: Any) -> int:
    value = int(getattr(tokenizer, "model_max_length", 0) or 0)
    return value if 0 < value < 1_000_000 else 0
