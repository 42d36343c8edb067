"""What every engine shares: the `TextEncoder`/`TextClassifier` protocols, length-sorted batching and
`LocalEncoder`, the base of the engines that run a model in this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

DEFAULT_MAX_LENGTH = 128


@runtime_checkable
class TextEncoder(Protocol):
    """Texts -> L2-normalised sentence embeddings, shape (N, D), float32, in input order."""

    description: str
    max_length: int
    truncated: int  # how many texts were cut at max_length so far

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray: ...


@runtime_checkable
class TextClassifier(Protocol):
    """Texts -> class logits, shape (N, C), float32, in input order; `labels[i]` names column i."""

    description: str
    max_length: int
    truncated: int
    labels: list[str]

    def predict(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class Batch:
    """A length-sorted slice of the input: `order` maps its rows back to input positions."""

    order: np.ndarray
    texts: list[str]


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[Batch]:
    """Group texts of similar length so batches carry little padding (longest first)."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    return [
        Batch(order[i : i + batch_size], [texts[j] for j in order[i : i + batch_size]])
        for i in range(0, len(texts), batch_size)
    ]


def scatter_rows(batches: list[Batch], outputs: list[np.ndarray], n: int) -> np.ndarray:
    """Put per-batch outputs back in input order."""
    width = outputs[0].shape[1] if outputs else 0
    result = np.zeros((n, width), dtype=np.float32)
    for batch, out in zip(batches, outputs, strict=True):
        result[batch.order] = out
    return result


def map_batches(
    texts: Sequence[str],
    text_pairs: Sequence[str] | None,
    batch_size: int,
    progress: bool,
    run_batch: Callable[[list[str], list[str] | None], np.ndarray],
) -> np.ndarray:
    """Run `run_batch(firsts, seconds)` over length-sorted batches; rows come back in input order."""
    from tqdm.auto import tqdm

    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    # pairs are batched by their joint length; `order` maps back to the input rows either way
    keys = list(texts) if text_pairs is None else [a + " " + b for a, b in zip(texts, text_pairs, strict=True)]
    batches = length_sorted_batches(keys, batch_size)
    outputs = []
    for batch in tqdm(batches, disable=not progress, desc="encode", unit="batch", leave=False):
        if text_pairs is None:
            firsts, seconds = batch.texts, None  # the batch's texts, already in its order
        else:  # the batch holds the joined keys: take both sides from the inputs
            firsts, seconds = [texts[i] for i in batch.order], [text_pairs[i] for i in batch.order]
        outputs.append(np.asarray(run_batch(firsts, seconds), dtype=np.float32))
    return scatter_rows(batches, outputs, len(texts))


class LocalEncoder:
    """`encode` / `predict` over length-sorted batches; each runtime supplies only
    `_run_batch(firsts, seconds, pool)`: one batch's pooled embeddings (pool) or logits.

    An embedding model has no `labels`; a classifier names its output columns in `labels`.
    """

    description: str
    labels: list[str]

    def _run_batch(self, firsts: list[str], seconds: list[str] | None, pool: bool) -> np.ndarray:
        raise NotImplementedError

    def _run(
        self, texts: Sequence[str], batch_size: int, progress: bool, pool: bool, text_pairs: Sequence[str] | None = None
    ) -> np.ndarray:
        return map_batches(texts, text_pairs, batch_size, progress, lambda f, s: self._run_batch(f, s, pool))

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        from studentpack.ground.errors import UserError

        if self.labels:
            raise UserError(f"{self.description} is a classifier; it has no sentence embeddings")
        return self._run(texts, batch_size, progress, pool=True)

    def predict(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
        *,
        text_pairs: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Logits (N, C); `text_pairs` feeds sentence pairs (cross-encoders such as an STS-B regressor)."""
        from studentpack.ground.errors import UserError

        if not self.labels:
            raise UserError(f"{self.description} is an embedding model, not a classifier")
        return self._run(texts, batch_size, progress, pool=False, text_pairs=text_pairs)


def is_classifier_config(config: dict[str, Any]) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])
