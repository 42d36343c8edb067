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
