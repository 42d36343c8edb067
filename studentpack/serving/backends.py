"""What the server needs from a model: tokenize texts, run one padded batch, return one row per text.

Three implementations: exported variant directories (ONNX Runtime or OpenVINO, through
`studentpack.engines.graph`), static Model2Vec directories (numpy, through `studentpack.engines.static`)
and, for baselines, PyTorch Hugging Face directories (through `studentpack.engines.pytorch`). The server
never sees which one it has.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from studentpack.ground.errors import UserError

Kind = Literal["embedding", "classifier"]


@dataclass(frozen=True)
class Tokenized:
    """Token ids per text, already cut to the model's maximum; `truncated[i]` says whether text i was cut.

    `types` holds token type ids for sentence pairs (None for single texts: all zeros).
    """

    ids: list[list[int]]
    truncated: list[bool]
    types: list[list[int]] | None = None


@dataclass
class ModelInfo:
    """What clients may learn about a served model (metadata endpoints)."""

    kind: Kind
    dim: int  # embedding width, or number of labels
    max_length: int
    platform: str  # OIP platform string: onnxruntime_onnx | openvino | model2vec_static | pytorch_torch
    device: str
    providers: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    source: str = ""  # the directory it came from (shown to the operator, never chosen by a request)
    sha256: str = ""  # content hash of the model directory (provenance.hash_directory): joins reports to files
    # the lowest cosine between a text alone and in a mixed batch (batch_invariance.py), measured at load
    batch_cosine: float = 1.0
    batching: str = "batched"  # or "per-text": one text per call, because batch_cosine is too low

    @property
    def output_name(self) -> str:
        return "embedding" if self.kind == "embedding" else "logits"


class Backend(Protocol):
    info: ModelInfo

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Tokenized: ...

    def run(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None]) -> np.ndarray:
        """One batch (token ids, type ids or None per row) -> (B, dim) float32, padded to its own longest row."""
        ...

    def close(self) -> None: ...


class TextTokenizer:
    """A private copy of a fast tokenizer: truncation at max_length, no padding (batches pad themselves)."""

    def __init__(self, hf_tokenizer: Any, max_length: int) -> None:
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UserError("the model's tokenizer has no fast (tokenizers) implementation; serving needs one")
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(backend.to_str())  # a copy: the model's own object stays untouched
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        pad_id = getattr(hf_tokenizer, "pad_token_id", None)
        self.pad_id = int(pad_id) if pad_id is not None else 0

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Tokenized:
        """Same ids as the HF tokenizer with truncation=True (longest_first for pairs), max_length."""
        if pairs is None:
            encodings = self._tok.encode_batch(list(texts))
            return Tokenized([e.ids for e in encodings], [bool(e.overflowing) for e in encodings])
        encodings = self._tok.encode_batch(list(zip(texts, pairs, strict=True)))
        truncated = [bool(e.overflowing) for e in encodings]
        return Tokenized([e.ids for e in encodings], truncated, [e.type_ids for e in encodings])


@dataclass(frozen=True)
class Feeds:
    """One padded batch: input_ids, attention_mask and token_type_ids, each (B, T) int64."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray


def pad_batch(ids: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None], pad_id: int) -> Feeds:
    """Ragged rows -> (B, T) arrays, T = the longest row of this batch (not the model maximum)."""
    longest = max(len(row) for row in ids)
    input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)  # (B, T)
    mask = np.zeros((len(ids), longest), dtype=np.int64)  # (B, T)
    type_ids = np.zeros((len(ids), longest), dtype=np.int64)  # (B, T)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
        row_types = types[i]
        if row_types is not None:
            type_ids[i, : len(row_types)] = row_types
    return Feeds(input_ids, mask, type_ids)


class TorchBackend:
    """A PyTorch HF directory (baselines): masked mean + L2 for encoders, logits for classifiers."""

    def __init__(self, path: Path, device: str, max_length: int, threads: int) -> None:
        import torch

        from studentpack.engines.pytorch import open_torch

        if threads:
            torch.set_num_threads(threads)
        self._encoder = open_torch(path, device=device, max_length=max_length)
        self._tokenizer = TextTokenizer(self._encoder.tokenizer, self._encoder.max_length)
        labels = list(self._encoder.labels)
        config = self._encoder.model.config
        self.info = ModelInfo(
            kind="classifier" if labels else "embedding",
            dim=len(labels) if labels else self._encoder.head.width(int(config.hidden_size)),
            max_length=self._encoder.max_length,
            platform="pytorch_torch",
            device=str(self._encoder.device),
            providers=[f"torch:{self._encoder.device.type}"],
            labels=labels,
            source=str(path),
        )
        warm = self.tokenize(["warm up"])
        self.run(warm.ids, [None])

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Tokenized:
        return self._tokenizer(texts, pairs)

    def run(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None]) -> np.ndarray:
        import torch

        batch = pad_batch(ids, types, self._tokenizer.pad_id)
        device = self._encoder.device
        feeds = {
            "input_ids": torch.from_numpy(batch.input_ids).to(device),
            "attention_mask": torch.from_numpy(batch.attention_mask).to(device),
            "token_type_ids": torch.from_numpy(batch.token_type_ids).to(device),
        }
        with torch.inference_mode():
            out = self._encoder.model(**feeds)
            if self.info.kind == "classifier":
                rows = out.logits  # (B, C)
            else:
                rows = self._encoder.head(out.last_hidden_state, feeds["attention_mask"])  # (B, T, H) -> (B, D)
            return rows.float().cpu().numpy()

    def close(self) -> None:
        pass


def is_variant_dir(path: Path) -> bool:
    from studentpack.engines.graph import is_variant_dir as has_graph

    return has_graph(path)


def is_static_model(path: Path) -> bool:
    from studentpack.engines.static import is_static_model as says_model2vec

    return says_model2vec(path)


def check_model_dir(path: Path, force: bool = False, max_length: int = 0) -> None:
    """Cheap checks before anything heavy is imported: a directory holding an ONNX variant, a static
    (Model2Vec) model or an HF model."""
    if not path.exists():
        raise UserError(f"model not found: {path}")
    if not path.is_dir():
        raise UserError(f"{path} is a file; give a model directory (an exported variant or a Hugging Face dir)")
    if not is_variant_dir(path) and not (path / "config.json").is_file():
        raise UserError(f"{path} is neither an exported variant (model.onnx or model.xml) nor a Hugging Face model dir")
    _check_runtime_installed(path)
    if not is_variant_dir(path) and is_static_model(path):
        from studentpack.model.static_format import load_static

        load_static(path)  # refuses a broken table or tokenizer before a port is bound; costs tens of ms
    if is_variant_dir(path) and (path / "export.json").is_file():
        try:
            record = json.loads((path / "export.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}/export.json does not parse: {exc}") from exc
        if not force:
            _check_export_record(path, record if isinstance(record, dict) else {}, max_length)


def _check_runtime_installed(path: Path) -> None:
    """The package that runs this directory is installed: a lean install serves ONNX graphs and static
    models only."""
    from studentpack.engines.graph import graph_file
    from studentpack.ground.extras import require_modules

    graph = graph_file(path)
    if graph is None and is_static_model(path):
        return  # numpy, tokenizers and safetensors: the core install
    if graph is None:
        require_modules(f"{path} is a PyTorch model directory", "torch", "transformers")
    elif graph.name == "model.xml":
        require_modules(f"{path} is an OpenVINO graph", "openvino")
    else:
        require_modules(f"{path} is an ONNX graph", "onnxruntime")


def _check_export_record(path: Path, record: dict[str, Any], max_length: int = 0) -> None:
    """A variant that failed its gate, or was quantized for another CPU, is not served by accident."""
    from studentpack.ground.isa import preset_mismatch
    from studentpack.ground.provenance import cpu_flags

    status = record.get("status", "accepted")
    if status != "accepted" or path.resolve().parent.name == "rejected":
        reason = record.get("reason") or "it is under rejected/"
        raise UserError(f"{path} failed its export gate ({reason}); serve it anyway with --force")
    preset = (record.get("isa") or {}).get("preset")
    problem = preset_mismatch(preset, cpu_flags()) if preset else ""
    if problem:
        raise UserError(f"{path}: {problem}; re-export it here (studentpack export --isa auto) or pass --force")
    gated = int(record.get("gated_length") or 0)
    served = min(max_length, int(record.get("max_length") or max_length))  # serve caps at the model's maximum
    if gated and served > gated:
        raise UserError(
            f"{path} passed its gate on inputs up to {gated} tokens, not the {served} asked for; "
            f"serve it with --max-length {gated}, re-export with --max-length {served}, or pass --force"
        )


def load_backend(
    path: Path,
    device: str = "cpu",
    max_length: int = 128,
    threads: int = 0,
    spin: bool = False,
    force: bool = False,
    max_batch: int = 0,
    release_memory: bool = True,
) -> Backend:
    """Open a model directory for serving; CUDA that is not really used is an error, never a CPU fallback."""
    check_model_dir(path, force, max_length)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from studentpack.ground.provenance import hash_directory

    backend: Backend
    if is_variant_dir(path):
        from studentpack.serving.graph_backend import GraphBackend

        backend = GraphBackend(path, device, max_length, threads, spin, max_batch, release_memory)
    elif is_static_model(path):
        from studentpack.serving.static_backend import StaticBackend

        backend = StaticBackend(path, device, max_length)
    else:
        backend = TorchBackend(path, device=device, max_length=max_length, threads=threads)
    backend.info.sha256 = hash_directory(path)
    backend.info.batch_cosine = round(measure_batch_cosine(backend), 6)
    return backend


def measure_batch_cosine(backend: Backend) -> float:
    """The lowest cosine between a probe text run alone and in a mixed padded batch, on this backend."""
    from studentpack.batch_invariance import worst_batch_cosine

    def encode(texts: Sequence[str]) -> np.ndarray:
        return backend.run(backend.tokenize(texts).ids, [None] * len(texts))

    return worst_batch_cosine(encode)
