"""OD transfer: match the teacher's masked-language-model distribution at masked positions.

loss = T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), averaged over masked positions, plus an
optional hard MLM cross-entropy against the original tokens (`mlm_weight`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studentpack.features import FeatureRequest, Features
from studentpack.transfer.base import Transfer


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) over (M, V) logits, mean over the M positions."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=-1)  # (M, V)
    log_p_t = F.log_softmax(teacher_logits.to(student_logits.dtype) / temperature, dim=-1)  # (M, V)
    kl = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(-1)  # (M,)
    return kl.mean() * temperature**2


class OutputTransfer(Transfer):
    name = "od"

    def __init__(self, temperature: float = 2.0, mlm_weight: float = 0.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.mlm_weight = mlm_weight

    def student_request(self) -> FeatureRequest:
        return FeatureRequest(mlm_logits=True)

    def teacher_request(self) -> FeatureRequest:
        return FeatureRequest(mlm_logits=True)

    def forward(self, student: Features, teacher: Features) -> dict[str, torch.Tensor]:
        assert student.mlm_logits is not None and teacher.mlm_logits is not None
        terms = {"od": soft_kl(student.mlm_logits, teacher.mlm_logits, self.temperature)}
        if self.mlm_weight > 0:
            assert student.mlm_labels is not None
            terms["mlm"] = self.mlm_weight * F.cross_entropy(student.mlm_logits, student.mlm_labels)
        return terms

    def describe(self) -> dict[str, object]:
        return {"temperature": self.temperature, "mlm_weight": self.mlm_weight}
