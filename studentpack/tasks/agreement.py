"""Teacher agreement, no labels: how closely a student's sentence embeddings follow its teacher's."""

from __future__ import annotations

from typing import Any

import numpy as np

from studentpack.tasks.data import TextSet
from studentpack.tasks.metrics import pairwise_cosines, row_cosines, spearman


def agreement(
    student: Any,
    teacher: Any,
    texts: TextSet,
    batch_size: int = 32,
    progress: bool = False,
    max_pairwise: int = 2000,
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Spearman between the two models' pairwise similarities (any widths) and, for equal widths, cosines.

    - rank_spearman: over all pairs (i < j) of the first `max_pairwise` texts, the rank correlation
      of cos(s_i, s_j) with cos(t_i, t_j): 1 when the student orders similarities like the teacher.
    - mean_cosine / min_cosine: cos(s_i, t_i) per text, when the embedding widths are equal.
    """
    s = student.encode(texts.texts, batch_size=batch_size, progress=progress)  # (N, D_s)
    teacher_before = teacher.truncated
    t = teacher.encode(texts.texts, batch_size=batch_size, progress=progress)  # (N, D_t)
    ranked = min(len(texts), max_pairwise)
    metrics: dict[str, float | None] = {
        "rank_spearman": spearman(pairwise_cosines(s[:ranked]), pairwise_cosines(t[:ranked])),
        "mean_cosine": None,
        "min_cosine": None,
    }
    if s.shape[1] == t.shape[1]:
        cos = row_cosines(s, t)  # (N,)
        metrics["mean_cosine"] = float(np.mean(cos))
        metrics["min_cosine"] = float(np.min(cos))
    details = {
        "pairs_ranked": ranked * (ranked - 1) // 2,
        "widths": [int(s.shape[1]), int(t.shape[1])],
        "teacher_truncated": teacher.truncated - teacher_before,
    }
    return metrics, details
