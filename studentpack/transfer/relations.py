"""MHA transfer (MiniLMv2): match the teacher's self-attention relations in the student.

From one teacher layer and the student's last layer, Q, K and V (concatenated over heads) are split
into `relation_heads` equal slices; within each slice the scaled dot products between tokens give a
distribution over keys (Q-Q, K-K, V-V). The loss is KL(teacher || student), summed over keys,
averaged over relation heads and real query tokens. Padded keys get no probability mass. Student and
teacher may differ in width and head count: only the number of relation heads must match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from studentpack.errors import UserError
from studentpack.features import FeatureRequest, Features
from studentpack.transfer.base import Transfer

RELATIONS = ("qq", "kk", "vv")
PREFERRED_RELATION_HEADS = 48
MAX_RELATION_HEADS = 64


def choose_relation_heads(student_width: int, teacher_width: int, requested: int | None) -> tuple[int, str]:
    """The relation-head count and a note on how it was chosen."""
    if requested is not None:
        if requested < 1 or student_width % requested or teacher_width % requested:
            raise UserError(
                f"--relation-heads {requested} must divide both widths (student {student_width}, "
                f"teacher {teacher_width})"
            )
        return requested, "requested"
    if student_width % PREFERRED_RELATION_HEADS == 0 and teacher_width % PREFERRED_RELATION_HEADS == 0:
        return PREFERRED_RELATION_HEADS, "default 48"
    common = math.gcd(student_width, teacher_width)
    best = max(d for d in range(1, MAX_RELATION_HEADS + 1) if common % d == 0)
    return (
        best,
        f"48 does not divide widths {student_width} and {teacher_width}; "
        f"using {best}, the largest common divisor <= 64",
    )


def default_teacher_layer(teacher_layers: int) -> int:
    """Last layer for teachers of <= 12 layers; an upper-middle one for deeper (24 -> 21, as MiniLMv2)."""
    return teacher_layers if teacher_layers <= 12 else teacher_layers - teacher_layers // 8


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(R, B, T, D) -> (R, B, Hr, T, D / Hr)."""
    r, b, t, d = x.shape
    return x.view(r, b, t, heads, d // heads).transpose(2, 3)


def relation_scores(h: torch.Tensor, key_bias: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot products between tokens, padded keys at -inf.

    h: (R, B, Hr, T, d); key_bias: (B, T), 0 on real tokens and -inf on padding, or None if no padding.
    Returns (R, B, Hr, T, T), written once: the scale goes on the small inputs (d^-1/4 each side) and
    the mask is fused into the matmul.
    """
    r, b, hr, t, d = h.shape
    flat = (h * d**-0.25).reshape(r * b * hr, t, d)  # (N, T, d)
    if key_bias is None:
        scores = torch.bmm(flat, flat.transpose(1, 2))  # (N, T, d) @ (N, d, T) -> (N, T, T)
    else:
        bias = key_bias[None, :, None, None, :].expand(r, b, hr, 1, t).reshape(r * b * hr, 1, t)  # (N, 1, T)
        scores = torch.baddbmm(bias, flat, flat.transpose(1, 2))  # (N, T, T)
    return scores.view(r, b, hr, t, t)


def relation_log_probs(x: torch.Tensor, key_mask: torch.Tensor, heads: int) -> torch.Tensor:
    """Reference form (used in tests): (R, B, T, D) -> (R, B, Hr, T, T) log-probabilities over keys."""
    bias = _key_bias(key_mask, x.dtype)
    return F.log_softmax(relation_scores(split_heads(x, heads), bias), dim=-1)


def _key_bias(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    if bool(key_mask.all()):
        return None
    zeros = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    return zeros.masked_fill(~key_mask.bool(), float("-inf"))  # (B, T)


def _expected_score(h: torch.Tensor, p_t: torch.Tensor) -> torch.Tensor:
    """sum_k p_t[q, k] * score[q, k] without forming `score`: h_q . (P_t H)_q / sqrt(d).

    h: (R, B, Hr, T, d); p_t: (R, B, Hr, T, T) with zeros on padded keys -> (R, B, Hr, T).
    """
    mixed = torch.matmul(p_t, h)  # (R, B, Hr, T, T) @ (R, B, Hr, T, d) -> (R, B, Hr, T, d)
    return (h * mixed).sum(-1) / math.sqrt(h.shape[-1])


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, heads: int) -> torch.Tensor:
    """KL(teacher || student) per relation: (R,) averaged over relation heads and real query tokens.

    student: (R, B, T, D_s); teacher: (R, B, T, D_t); attention_mask: (B, T).

    Per query q, with scores s (student) and t (teacher) over real keys k:
        KL = sum_k p_t log p_t - sum_k p_t log p_s
           = (E_pt[t] - lse(t)) - (E_pt[s] - lse(s))
    The expectations are two small matmuls (see _expected_score), so the only (T, T) tensors are the
    scores and p_t: far fewer passes over memory than log-softmax + elementwise KL.
    """
    bias = _key_bias(attention_mask, student.dtype)  # (B, T)
    h_s = split_heads(student, heads)  # (R, B, Hr, T, d_s)
    with torch.no_grad():
        h_t = split_heads(teacher.to(student.dtype), heads)  # (R, B, Hr, T, d_t)
        t_scores = relation_scores(h_t, bias)  # (R, B, Hr, T, T)
        lse_t = torch.logsumexp(t_scores, dim=-1)  # (R, B, Hr, T)
        p_t = torch.exp(t_scores - lse_t.unsqueeze(-1))  # (R, B, Hr, T, T), 0 on padded keys
        del t_scores
        neg_entropy = _expected_score(h_t, p_t) - lse_t  # (R, B, Hr, T)
    lse_s = torch.logsumexp(relation_scores(h_s, bias), dim=-1)  # (R, B, Hr, T)
    kl = neg_entropy - _expected_score(h_s, p_t) + lse_s  # (R, B, Hr, T)
    queries = attention_mask[None, :, None, :].to(kl.dtype)  # (1, B, 1, T)
    return (kl * queries).sum(dim=(1, 2, 3)) / (queries.sum() * heads)  # (R,)


class RelationTransfer(Transfer):
    name = "mha"

    def __init__(self, student_layer: int, teacher_layer: int, relation_heads: int) -> None:
        super().__init__()
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.relation_heads = relation_heads

    def student_request(self) -> FeatureRequest:
        return FeatureRequest(qkv_layers=frozenset({self.student_layer}))

    def teacher_request(self) -> FeatureRequest:
        return FeatureRequest(qkv_layers=frozenset({self.teacher_layer}))

    def forward(self, student: Features, teacher: Features) -> dict[str, torch.Tensor]:
        s = torch.stack(student.qkv[self.student_layer])  # 3 x (B, T, D_s) -> (3, B, T, D_s)
        t = torch.stack(teacher.qkv[self.teacher_layer])  # 3 x (B, T, D_t) -> (3, B, T, D_t)
        per_relation = relation_kl(s, t, student.attention_mask, self.relation_heads)  # (3,)
        return {f"mha_{rel}": per_relation[i] for i, rel in enumerate(RELATIONS)}

    def describe(self) -> dict[str, object]:
        return {
            "student_layer": self.student_layer,
            "teacher_layer": self.teacher_layer,
            "relation_heads": self.relation_heads,
        }
