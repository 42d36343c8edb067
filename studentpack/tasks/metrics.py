"""Task metrics over plain arrays. Values are returned as fractions; reports scale them x100."""

from __future__ import annotations

import numpy as np

from studentpack.model.pooling import l2_normalize_np


def ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span (scipy's rankdata 'average')."""
    values = np.asarray(x, np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]  # (N,): first row of each run of equal values
    group = np.cumsum(starts_group) - 1
    first = np.flatnonzero(starts_group)
    last = np.r_[first[1:], len(values)] - 1
    result = np.empty(len(values))
    result[order] = ((first + last) / 2 + 1)[group]
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant (no ranking to compare)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return pearson(ranks(x), ranks(y))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(np.asarray(x, np.float64), np.asarray(y, np.float64))[0, 1])


def accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(gold)))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (N, D) -> (N,): cosine of each row pair (inputs re-normalised, whatever produced them)."""
    a64 = l2_normalize_np(np.asarray(a, np.float64))
    b64 = l2_normalize_np(np.asarray(b, np.float64))
    return np.einsum("nd,nd->n", a64, b64)


def pairwise_cosines(e: np.ndarray) -> np.ndarray:
    """(N, D) -> (N*(N-1)/2,): cosine of every unordered pair of rows, upper triangle in row order."""
    unit = l2_normalize_np(np.asarray(e, np.float64))
    sims = unit @ unit.T  # (N, D) @ (D, N) -> (N, N)
    return sims[np.triu_indices(len(unit), k=1)]


def neighbour_recall(student: np.ndarray, teacher: np.ndarray, k: int = 10) -> float:
    """Mean over texts of |student's k nearest ∩ teacher's k nearest| / k, each text's neighbours taken
    among the other texts by cosine: does the student retrieve what the teacher retrieves?"""
    if len(teacher) <= k:
        raise ValueError(f"recall@{k} needs more than {k} texts, got {len(teacher)}")
    return float(np.mean([len(set(s) & set(t)) / k for s, t in zip(_top_k(student, k), _top_k(teacher, k),
                                                                       strict=True)]))  # fmt: skip


def _top_k(e: np.ndarray, k: int) -> np.ndarray:
    """(N, D) -> (N, k): indices of each row's k most similar other rows (ties broken by index)."""
    unit = l2_normalize_np(np.asarray(e, np.float64))
    sims = unit @ unit.T  # (N, D) @ (D, N) -> (N, N)
    np.fill_diagonal(sims, -np.inf)  # a text is not its own neighbour
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]
