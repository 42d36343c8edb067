"""EMB transfer, the baseline a sentence-transformers user would pick: MSE between the student's and the
teacher's sentence embeddings (masked mean of the last layer, L2-normalised, as the model serves them).

It is sentence-transformers' model-distillation recipe (an MSE loss on the pooled output), run on the
same batches as the other transfers. When widths differ, a learned projection maps the student's
pooled vector into the teacher's width before normalising.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studentpack.model.features import FeatureRequest, Features
from studentpack.model.pooling import mean_pool
from studentpack.text.segments import segment_means
from studentpack.transfer.base import Transfer


def _sentences(states: torch.Tensor, features: Features) -> torch.Tensor:
    """One pooled vector per sentence: per row, or per line when lines are packed in isolation."""
    if features.segments is not None:
        return segment_means(states, features.segments)  # (B, T, H) -> (N, H)
    return mean_pool(states, features.attention_mask)  # (B, T, H) -> (B, H)


class EmbeddingTransfer(Transfer):
    name = "emb"

    def __init__(self, student_layers: int, teacher_layers: int, student_width: int, teacher_width: int) -> None:
        super().__init__()
        self.student_layer, self.teacher_layer = student_layers, teacher_layers
        self.projection = torch.nn.Linear(student_width, teacher_width) if student_width != teacher_width else None

    def student_request(self) -> FeatureRequest:
        return FeatureRequest(hidden_layers=frozenset({self.student_layer}))

    def teacher_request(self) -> FeatureRequest:
        return FeatureRequest(hidden_layers=frozenset({self.teacher_layer}))

    def forward(self, student: Features, teacher: Features) -> dict[str, torch.Tensor]:
        s = _sentences(student.hidden[self.student_layer], student)  # (N, H_s): N rows, or N packed lines
        if self.projection is not None:
            s = self.projection(s)  # (N, H_s) -> (N, H_t)
        t = _sentences(teacher.hidden[self.teacher_layer].to(s.dtype), teacher)  # (N, H_t)
        # (N, H_t) unit vectors; the mean over dimensions is sentence-transformers' MSELoss
        return {"emb": F.mse_loss(F.normalize(s, dim=-1), F.normalize(t, dim=-1))}

    def sentence_projection(self, student_top: int, teacher_top: int) -> torch.nn.Linear | None:
        tops = (self.student_layer, self.teacher_layer) == (student_top, teacher_top)
        return self.projection if tops else None

    def describe(self) -> dict[str, object]:
        return {"pooling": "mean", "normalised": True, "projected": self.projection is not None}
