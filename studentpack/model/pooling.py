"""Sentence embeddings from token states: attention-masked mean pooling, then L2 normalisation.

This matches sentence-transformers' Pooling(mean) + Normalize for all-MiniLM-L6-v2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # torch only where torch tensors are pooled: readers of numpy rows (report, serve) skip it
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")


def mean_pool(token_states: Array, attention_mask: Array) -> Array:
    """(B, T, H), (B, T) -> (B, H): average of the states of real tokens, for torch tensors and numpy arrays alike."""
    mask = attention_mask[..., None]  # (B, T, 1)
    mask = mask.astype(token_states.dtype) if isinstance(mask, np.ndarray) else mask.to(token_states.dtype)
    return (token_states * mask).sum(1) / mask.sum(1).clip(min=1e-9)  # (B, H) / (B, 1)


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.normalize(vectors, p=2.0, dim=-1)


def l2_normalize_np(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
