"""Sentence embeddings from token states: attention-masked mean pooling, then L2 normalisation.

This matches sentence-transformers' Pooling(mean) + Normalize for all-MiniLM-L6-v2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only where torch tensors are pooled: readers of numpy rows (report, serve) skip it
    import torch


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, H), (B, T) -> (B, H): average of the states of real tokens."""
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)  # (B, T, 1)
    summed = (token_states * mask).sum(dim=1)  # (B, H)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return summed / counts


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.normalize(vectors, p=2.0, dim=-1)


def l2_normalize_np(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
