"""STS-B: Spearman between a model's similarity for each sentence pair and the gold 0-5 score."""

from __future__ import annotations

from typing import Any

import numpy as np

from studentpack.ground.errors import UserError
from studentpack.tasks.metrics import pearson, row_cosines, spearman
from studentpack.tasks.sets import PairSet


def embed_pairs(encoder: Any, pairs: PairSet, batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Embed every distinct sentence once: (N, D), (N, D) for the first and second sentences."""
    unique = list(dict.fromkeys(pairs.first + pairs.second))
    index = {text: i for i, text in enumerate(unique)}
    vectors = encoder.encode(unique, batch_size=batch_size, progress=progress)  # (U, D)
    return vectors[[index[t] for t in pairs.first]], vectors[[index[t] for t in pairs.second]]


def correlations(predicted: np.ndarray, pairs: PairSet) -> dict[str, float]:
    """Fractions (not x100): Spearman first, the task metric; Pearson beside it."""
    return {"spearman": spearman(predicted, pairs.scores), "pearson": pearson(predicted, pairs.scores)}


def zeroshot(encoder: Any, pairs: PairSet, batch_size: int = 32, progress: bool = False) -> dict[str, float]:
    """Cosine of the (mean-pooled, L2-normalised) sentence embeddings against the gold scores."""
    first, second = embed_pairs(encoder, pairs, batch_size, progress)
    return correlations(row_cosines(first, second), pairs)


def cross_scores(classifier: Any, pairs: PairSet, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """(N,) regression outputs of a sentence-pair model (a fine-tuned STS-B cross-encoder)."""
    if len(classifier.labels) != 1:
        raise UserError(
            f"{classifier.description} is a {len(classifier.labels)}-class classifier; "
            "stsb needs an embedding model or a 1-output regression model"
        )
    try:
        logits = classifier.predict(pairs.first, batch_size=batch_size, progress=progress, text_pairs=pairs.second)
    except TypeError as exc:
        raise UserError(f"{classifier.description}: this runtime cannot score sentence pairs") from exc
    return np.asarray(logits)[:, 0]


def predict(classifier: Any, pairs: PairSet, batch_size: int = 32, progress: bool = False) -> dict[str, float]:
    return correlations(cross_scores(classifier, pairs, batch_size, progress), pairs)
