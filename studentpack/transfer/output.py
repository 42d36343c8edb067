"""OD transfer: match the teacher's masked-language-model distribution at masked positions.

loss = T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), averaged over masked positions, plus an
optional hard MLM cross-entropy against the original tokens (`mlm_weight`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from studentpack.model.features import FeatureRequest, Features
from studentpack.transfer.base import Transfer, softmax_and_logsumexp


class _SoftKL(torch.autograd.Function):
    """Per-row KL(softmax(t / T) || softmax(s / T)) for (M, V) logits, with a hand-written backward.

    Over a 30k vocabulary the generic log_softmax + kl_div graph makes ~10 passes over (M, V);
    here: one fused softmax per side, two row dots, and (p_s - p_t) / T in the backward.
    KL = sum p_t z_t - lse(z_t) - (sum p_t z_s - lse(z_s)), z = logits / T.
    """

    @staticmethod
    def forward(ctx: Any, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        z_s, z_t = student / temperature, teacher / temperature  # (M, V)
        p_s, lse_s = softmax_and_logsumexp(z_s)
        p_t, lse_t = softmax_and_logsumexp(z_t)
        kl = (_row_dot(p_t, z_t) - lse_t) - (_row_dot(p_t, z_s) - lse_s)  # (M,)
        ctx.save_for_backward(p_s, p_t)
        ctx.temperature = temperature
        return kl

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        p_s, p_t = ctx.saved_tensors
        return (p_s - p_t).mul_(grad.unsqueeze(-1) / ctx.temperature), None, None


def _row_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, V), (M, V) -> (M,) without a (M, V) temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).flatten()  # (M, 1, V) @ (M, V, 1) -> (M,)


def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher || student) over (M, V) logits, mean over the M positions."""
    teacher = teacher_logits.detach().to(student_logits.dtype)
    kl = _SoftKL.apply(student_logits, teacher, temperature)  # (M,)
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
