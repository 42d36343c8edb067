"""What the engines over an exported graph share (ONNX Runtime, OpenVINO): a variant directory's
export.json, its tokenizer -> feeds, and the encode protocol over a session.

    session = open_session("runs/x/onnx/int8-dynamic", threads=2)   # OrtSession or OvSession
    feeds = session.tokenize(["a sentence", "another one"])          # {"input_ids": (B, T) int64, ...}
    out = session.run(feeds)                                         # {"sentence_embedding": (B, H), ...}
    encoder = GraphEncoder(session, "int8-dynamic")                  # encode() / predict()

A session subclass loads its runtime's model and supplies `input_types`, `output_names`, `run` and
`output_width`; tokenisation, truncation counting and the model's kind live here once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from studentpack.engines.base import DEFAULT_MAX_LENGTH, LocalEncoder
from studentpack.ground.errors import UserError
from studentpack.model.pooling import l2_normalize_np, mean_pool

EXPORT_FILE = "export.json"
# the file that marks a variant directory -> the engine that runs it
GRAPH_FILES = {"model.onnx": "onnxruntime", "model.xml": "openvino"}


def graph_file(path: Path) -> Path | None:
    """The exported graph in a variant directory (model.onnx or model.xml), or None."""
    for name in GRAPH_FILES:
        if (path / name).is_file():
            return path / name
    return None


def is_variant_dir(path: Path) -> bool:
    return graph_file(path) is not None


def read_export_info(path: Path) -> dict[str, Any]:
    """The variant's export.json (empty when the directory holds a bare graph)."""
    file = path / EXPORT_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from exc
    return data if isinstance(data, dict) else {}


class GraphSession:
    """A loaded graph with its tokenizer: texts -> feeds -> named outputs. Subclasses load the model
    and set `input_types` (input name -> numpy int type), `output_names` and `providers`."""

    MODEL_FILE: ClassVar[str]  # the graph file in a variant directory
    PLATFORM: ClassVar[str]  # the Open Inference Protocol platform string of this runtime
    path: Path
    input_types: dict[str, type]
    output_names: list[str]
    providers: list[str]

    def __init__(self, tokenizer: Any, max_length: int, info: dict[str, Any] | None) -> None:
        """`max_length` is capped at the model's own limit (`info["max_length"]`) when known."""
        self.info = dict(info or {})
        self.tokenizer = tokenizer
        model_max = int(self.info.get("max_length") or 0) or _tokenizer_max(tokenizer)
        self.max_length = min(max_length, model_max) if model_max else max_length
        self.truncated = 0

    @classmethod
    def open(
        cls,
        variant_dir: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        warmup: bool = True,
        **options: Any,
    ) -> Self:
        """A session over a variant directory (graph + tokenizer files + export.json); `options` are the
        engine's own (see its __init__)."""
        from studentpack.engines.fast_tokenizer import load_graph_tokenizer

        path = Path(variant_dir)
        cls.check_device(device)
        if not (path / cls.MODEL_FILE).is_file():
            raise UserError(f"{path} is not an exported variant for this runtime: it has no {cls.MODEL_FILE}")
        tokenizer = load_graph_tokenizer(path)
        make: Any = cls  # each engine's __init__ takes (graph, tokenizer, ...) beyond the base's arguments
        info = read_export_info(path)
        return make(path / cls.MODEL_FILE, tokenizer, device, threads, max_length, warmup, info, **options)

    @staticmethod
    def check_device(device: str) -> None:
        """Refuse a device this engine cannot run before anything is loaded (engines override)."""

    @property
    def input_names(self) -> list[str]:
        return list(self.input_types)

    @property
    def kind(self) -> str:
        """ "embedding" or "classifier", from export.json or else from the graph's outputs."""
        kind = self.info.get("kind")
        if kind in ("embedding", "classifier"):
            return str(kind)
        return "classifier" if "logits" in self.output_names else "embedding"

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Already-tokenised feeds (as `tokenize` makes them) -> {output name: array}."""
        raise NotImplementedError

    def output_width(self, name: str) -> int | None:
        """The last dimension of output `name` when the graph fixes it."""
        raise NotImplementedError

    def warmup(self, rounds: int = 2, shapes: Sequence[tuple[int, int]] = ((2, 8),)) -> None:
        """Run small batches so the first real request does not pay for allocation and kernel choice;
        `shapes` (batch, tokens) adds the sizes a caller expects (a server: its largest batch too)."""
        for batch, tokens in shapes:
            tokens = min(tokens, self.max_length)  # never past the position table
            feeds: dict[str, np.ndarray] = {
                name: np.ones((batch, tokens), dtype=dtype) for name, dtype in self.input_types.items()
            }
            if "token_type_ids" in feeds:
                feeds["token_type_ids"][:] = 0
            for _ in range(rounds):
                self.run(feeds)

    def check_outputs(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise UserError(f"{self.path} has no output {missing[0]!r} (outputs: {', '.join(self.output_names)})")

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
        for name, dtype in self.input_types.items():
            if name in enc:
                feeds[name] = np.asarray(enc[name], dtype=dtype)
            elif name == "token_type_ids":
                feeds[name] = np.zeros_like(np.asarray(enc["input_ids"]), dtype=dtype)
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

    def run_texts(self, texts: Sequence[str], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return self.run(self.tokenize(texts), outputs)


class GraphEncoder(LocalEncoder):
    """TextEncoder / TextClassifier over a GraphSession (the protocol in `studentpack.engines`)."""

    def __init__(self, session: GraphSession, description: str) -> None:
        self.session = session
        self.description = description
        self.max_length = session.max_length
        self.labels: list[str] = graph_labels(session) if session.kind == "classifier" else []

    @property
    def truncated(self) -> int:
        return self.session.truncated

    def _embed(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if "sentence_embedding" in self.session.output_names:
            return self.session.run(feeds, ["sentence_embedding"])["sentence_embedding"]
        states = self.session.run(feeds, [self.session.output_names[0]])[self.session.output_names[0]]  # (B, T, H)
        return l2_normalize_np(mean_pool(states, feeds["attention_mask"]))  # (B, H)

    def _run_batch(self, firsts: list[str], seconds: list[str] | None, pool: bool) -> np.ndarray:
        feeds = self.session.tokenize(firsts, seconds)
        return self._embed(feeds) if pool else self.session.run(feeds, ["logits"])["logits"]


def graph_labels(session: GraphSession) -> list[str]:
    """Class names: export.json, else config.json's id2label, else LABEL_i for the logits' width."""
    labels = session.info.get("labels")
    if labels:
        return [str(label) for label in labels]
    config = session.path.parent / "config.json"
    if config.is_file():
        id2label = json.loads(config.read_text(encoding="utf-8")).get("id2label") or {}
        if id2label:
            return [str(id2label.get(str(i), i)) for i in range(len(id2label))]
    width = session.output_width("logits")
    return [f"LABEL_{i}" for i in range(width or 2)]


def open_session(
    variant_dir: str | Path,
    device: str = "cpu",
    threads: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    warmup: bool = True,
    **options: Any,
) -> GraphSession:
    """The session for a variant directory, by the graph it holds (model.onnx: ONNX Runtime; model.xml:
    OpenVINO). `options` go to that engine (ORT: spinning; OpenVINO: hint, warmup_shapes)."""
    path = Path(variant_dir)
    graph = graph_file(path)
    if graph is None:
        names = " or ".join(GRAPH_FILES)
        raise UserError(f"{path} is not an exported variant: it has no {names}")
    engine = session_class(graph)
    return engine.open(path, device=device, threads=threads, max_length=max_length, warmup=warmup, **options)


def session_class(graph: Path) -> type[GraphSession]:
    """The engine that runs a graph file (imported only when asked for)."""
    if GRAPH_FILES.get(graph.name) == "openvino":
        from studentpack.engines.openvino import OvSession

        return OvSession
    from studentpack.engines.ort import OrtSession

    return OrtSession


def open_graph(
    path: Path, device: str = "cpu", max_length: int = DEFAULT_MAX_LENGTH, threads: int | None = None, **_: Any
) -> GraphEncoder:
    """A GraphEncoder over an exported variant directory (what `engines.open_model` calls)."""
    session = open_session(path, device=device, threads=threads, max_length=max_length)
    variant = session.info.get("variant")
    return GraphEncoder(session, f"{path}" + (f" ({variant})" if variant else ""))


def _tokenizer_max(tokenizer: Any) -> int:
    value = int(getattr(tokenizer, "model_max_length", 0) or 0)
    return value if 0 < value < 1_000_000 else 0
