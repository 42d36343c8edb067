"""The one interface every transfer implements."""

from __future__ import annotations

import torch
from torch import nn

from studentpack.model.features import FeatureRequest, Features


class Transfer(nn.Module):
    """A named loss between student and teacher features; may own learned parameters (projections)."""

    name: str = "transfer"

    def student_request(self) -> FeatureRequest:
        raise NotImplementedError

    def teacher_request(self) -> FeatureRequest:
        raise NotImplementedError

    def forward(self, student: Features, teacher: Features) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        """Hyperparameters worth recording in the run manifest."""
        return {}

    def sentence_projection(self, student_top: int, teacher_top: int) -> nn.Linear | None:
        """The learnt map from the student's top layer into the teacher's top layer's width, if any."""
        return None


def masked_token_mean(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-token values (B, T) over real tokens only."""
    mask = attention_mask.to(values.dtype)  # (B, T)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def softmax_and_logsumexp(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the last dimension and its log-sum-exp: (..., K) -> (..., K), (...), from one fused softmax
    and two row maxima.

    lse = s_k - log p_k for any key k; taking k = argmax keeps log p_k >= -log T (no underflow).
    This avoids the slow broadcast subtract of torch.logsumexp over the last dimension.
    """
    probs = torch.softmax(scores, dim=-1)
    lse = scores.amax(dim=-1) - probs.amax(dim=-1).log()
    return probs, lse
