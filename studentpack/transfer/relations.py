"""MHA transfer (MiniLMv2): match the teacher's self-attention relations in the student.

From one teacher layer and the student's last layer, Q, K and V (concatenated over heads) are split
into `relation_heads` equal slices; within each slice the scaled dot products between tokens give a
distribution over keys (Q-Q, K-K, V-V). The loss is KL(teacher || student), summed over keys,
averaged over relation heads and real query tokens. Padded keys get no probability mass. Student and
teacher may differ in width and head count: only the number of relation heads must match.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from studentpack.ground.errors import UserError
from studentpack.model.features import FeatureRequest, Features
from studentpack.text.segments import same_segment
from studentpack.transfer.base import Transfer, softmax_and_logsumexp

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


def _flat_scaled(h: torch.Tensor) -> torch.Tensor:
    """(R, B, Hr, T, d) -> (N, T, d) scaled by d^-1/4, so that flat @ flat^T is the scaled dot product."""
    r, b, hr, t, d = h.shape
    return (h * d**-0.25).reshape(r * b * hr, t, d)


def _flat_bias(key_bias: torch.Tensor | None, shape: torch.Size) -> torch.Tensor | None:
    """(B, 1, T) or (B, T, T) key bias -> (N, 1, T) or (N, T, T) for the flattened (R, B, Hr) batch."""
    if key_bias is None:
        return None
    r, b, hr, t, _ = shape
    q = key_bias.shape[1]  # 1 (the same keys for every query) or T (isolated lines)
    return key_bias[None, :, None].expand(r, b, hr, q, t).reshape(r * b * hr, q, t)


def _scores(flat: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """(N, T, d) -> (N, T, T) dot products, the key mask fused into the matmul."""
    if bias is None:
        return torch.bmm(flat, flat.transpose(1, 2))
    return torch.baddbmm(bias, flat, flat.transpose(1, 2))


class _RelationLogSumExp(torch.autograd.Function):
    """lse_q = log sum_k exp(h_q . h_k + bias_k) for flattened, pre-scaled h: (N, T, d) -> (N, T).

    The backward never forms the (T, T) gradient of the scores: with P the row softmax and g the
    incoming gradient, dL/dh = g * (P h) + P^T (g * h), two small matmuls.

    Computed in float32 (at least) whatever comes in: under CUDA autocast the inputs arrive in bf16/fp16 (and
    may differ from the bias), autocast would hand back fp32 softmax next to half-precision h, and
    the backward, which runs outside autocast, would then multiply mismatched dtypes.
    """

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.input_dtype = flat.dtype
        wide = torch.promote_types(flat.dtype, torch.float32)  # fp32, or fp64 where tests use it
        with torch.autocast(device_type=flat.device.type, enabled=False):
            flat_wide = flat.to(wide)
            probs, lse = softmax_and_logsumexp(_scores(flat_wide, None if bias is None else bias.to(wide)))
        ctx.save_for_backward(flat_wide, probs)
        return lse

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        flat, probs = ctx.saved_tensors  # both float32 (or float64)
        g = grad.to(flat.dtype).unsqueeze(-1)  # (N, T, 1)
        mixed = torch.bmm(probs, flat)  # (N, T, T) @ (N, T, d) -> (N, T, d)
        spread = torch.bmm(probs.transpose(1, 2), g * flat)  # (N, T, T)^T @ (N, T, d) -> (N, T, d)
        return (g * mixed + spread).to(ctx.input_dtype), None


def relation_log_probs(
    x: torch.Tensor, key_mask: torch.Tensor, heads: int, segments: torch.Tensor | None = None
) -> torch.Tensor:
    """Reference form (used in tests): (R, B, T, D) -> (R, B, Hr, T, T) log-probabilities over keys."""
    h = split_heads(x, heads)
    scores = _scores(_flat_scaled(h), _flat_bias(_key_bias(key_mask, x.dtype, segments), h.shape))
    return F.log_softmax(scores, dim=-1).view(*h.shape[:-1], h.shape[-2])


def _key_bias(key_mask: torch.Tensor, dtype: torch.dtype, segments: torch.Tensor | None = None) -> torch.Tensor | None:
    """0 on the keys a query may relate to, -inf elsewhere: (B, 1, T), (B, T, T) for isolated lines, or None."""
    if segments is not None:
        allowed = same_segment(segments)  # (B, T, T); padding queries see only padding, never an empty row
    elif bool(key_mask.all()):
        return None
    else:
        allowed = key_mask.bool()[:, None, :]  # (B, 1, T)
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=key_mask.device)
    return zeros.masked_fill(~allowed, float("-inf"))


def _expected_score(h: torch.Tensor, p_t: torch.Tensor) -> torch.Tensor:
    """sum_k p_t[q, k] * score[q, k] without forming `score`: h_q . (P_t H)_q / sqrt(d).

    h: (R, B, Hr, T, d); p_t: (R, B, Hr, T, T) with zeros on padded keys -> (R, B, Hr, T).
    """
    mixed = torch.matmul(p_t, h)  # (R, B, Hr, T, T) @ (R, B, Hr, T, d) -> (R, B, Hr, T, d)
    return (h * mixed).sum(-1) / math.sqrt(h.shape[-1])


def relation_kl(
    student: torch.Tensor,
    teacher: torch.Tensor,
    attention_mask: torch.Tensor,
    heads: int,
    segments: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher || student) per relation: (R,) averaged over relation heads and real query tokens.

    student: (R, B, T, D_s); teacher: (R, B, T, D_t); attention_mask: (B, T); segments: (B, T) line
    numbers under isolated packing (a query then relates only to the keys of its own line).

    Per query q, with scores s (student) and t (teacher) over real keys k:
        KL = sum_k p_t log p_t - sum_k p_t log p_s
           = (E_pt[t] - lse(t)) - (E_pt[s] - lse(s))
    The expectations are small matmuls (see _expected_score) and lse(s) has a matmul-only backward,
    so the only (T, T) tensors are the two score matrices and their softmaxes.
    """
    bias = _key_bias(attention_mask, student.dtype, segments)  # (B, 1, T) or (B, T, T)
    h_s = split_heads(student, heads)  # (R, B, Hr, T, d_s)
    with torch.no_grad():
        h_t = split_heads(teacher.to(student.dtype), heads)  # (R, B, Hr, T, d_t)
        scores_t = _scores(_flat_scaled(h_t), _flat_bias(bias, h_t.shape))  # (N, T, T)
        p_t, lse_t = softmax_and_logsumexp(scores_t)  # (N, T, T), (N, T); p_t is 0 on padded keys
        del scores_t
        p_t = p_t.view(*h_t.shape[:-1], h_t.shape[-2])  # (R, B, Hr, T, T)
        neg_entropy = _expected_score(h_t, p_t) - lse_t.view(h_t.shape[:-1])  # (R, B, Hr, T)
    lse_s = _RelationLogSumExp.apply(_flat_scaled(h_s), _flat_bias(bias, h_s.shape))  # (N, T)
    kl = neg_entropy - _expected_score(h_s, p_t) + lse_s.view(h_s.shape[:-1])  # (R, B, Hr, T)
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
        per_relation = relation_kl(s, t, student.attention_mask, self.relation_heads, student.segments)  # (3,)
        return {f"mha_{rel}": per_relation[i] for i, rel in enumerate(RELATIONS)}

    def describe(self) -> dict[str, object]:
        return {
            "student_layer": self.student_layer,
            "teacher_layer": self.teacher_layer,
            "relation_heads": self.relation_heads,
        }
