"""MHA (MiniLMv2) relation transfer against a naive per-example, per-head reference."""

from __future__ import annotations

import math

import pytest
import torch

from studentpack.transfer.relations import choose_relation_heads, default_teacher_layer, relation_kl


def naive_relation_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """Loops over relations, examples, heads and query tokens; only real tokens count."""
    r_count, batch, _, _ = student.shape
    out = []
    for r in range(r_count):
        total, count = 0.0, 0
        for b in range(batch):
            n = int(mask[b].sum())  # real tokens are a prefix
            for h in range(heads):
                s = student[r, b, :n].chunk(heads, dim=-1)[h]  # (n, d_s)
                t = teacher[r, b, :n].chunk(heads, dim=-1)[h]  # (n, d_t)
                log_ps = torch.log_softmax(s @ s.T / math.sqrt(s.shape[-1]), dim=-1)
                log_pt = torch.log_softmax(t @ t.T / math.sqrt(t.shape[-1]), dim=-1)
                for q in range(n):
                    total = total + (log_pt[q].exp() * (log_pt[q] - log_ps[q])).sum()
                    count += 1
        out.append(total / count)
    return torch.stack(out)


def _inputs(seed: int, d_s: int, d_t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(3, 4, 9, d_s, generator=gen, dtype=torch.float64)
    teacher = torch.randn(3, 4, 9, d_t, generator=gen, dtype=torch.float64)
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    mask[3, 8:] = 0
    return student, teacher, mask


@pytest.mark.parametrize(("d_s", "d_t", "heads"), [(24, 24, 4), (16, 32, 8), (48, 24, 6)])
def test_matches_naive_reference_with_padding(d_s: int, d_t: int, heads: int) -> None:
    student, teacher, mask = _inputs(0, d_s, d_t)
    got = relation_kl(student, teacher, mask, heads)
    want = naive_relation_kl(student, teacher, mask, heads)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_gradients_match_naive_reference() -> None:
    student, teacher, mask = _inputs(
        1,
        16,
        32,
    )
    a = student.clone().requires_grad_(True)
    b = student.clone().requires_grad_(True)
    relation_kl(a, teacher, mask, 4).sum().backward()
    naive_relation_kl(b, teacher, mask, 4).sum().backward()
    assert a.grad is not None and b.grad is not None
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)
    # padded positions of the student receive no gradient
    assert a.grad[:, 2, 2:].abs().max() == 0


def test_padding_content_is_ignored() -> None:
    student, teacher, mask = _inputs(2, 24, 24)
    noisy_s, noisy_t = student.clone(), teacher.clone()
    noisy_s[:, 1, 5:] = 1e3
    noisy_t[:, 2, 2:] = -1e3
    torch.testing.assert_close(relation_kl(student, teacher, mask, 4), relation_kl(noisy_s, noisy_t, mask, 4))


def test_zero_for_identical_and_positive_otherwise() -> None:
    student, teacher, mask = _inputs(3, 24, 24)
    assert relation_kl(teacher, teacher, mask, 4).abs().max() < 1e-10
    assert (relation_kl(student, teacher, mask, 4) > 1e-3).all()


def test_relation_heads_choice() -> None:
    assert choose_relation_heads(384, 384, None)[0] == 48
    assert choose_relation_heads(384, 768, None)[0] == 48
    heads, note = choose_relation_heads(256, 384, None)  # gcd 128 -> largest divisor <= 64
    assert heads == 64 and "largest common divisor" in note
    assert choose_relation_heads(32, 32, None)[0] == 32
    assert choose_relation_heads(384, 384, 12) == (12, "requested")


def test_relation_heads_must_divide_both_widths() -> None:
    from studentpack.ground.errors import UserError

    with pytest.raises(UserError, match="must divide both widths"):
        choose_relation_heads(384, 256, 48)


def test_default_teacher_layer() -> None:
    assert default_teacher_layer(6) == 6
    assert default_teacher_layer(12) == 12
    assert default_teacher_layer(24) == 21


@pytest.mark.parametrize(("flat_dtype", "bias_dtype"), [(torch.bfloat16, torch.float32), (torch.float16, torch.float16),
                                                        (torch.bfloat16, torch.bfloat16)])  # fmt: skip
def test_relation_lse_takes_mixed_half_precision_inputs(flat_dtype: torch.dtype, bias_dtype: torch.dtype) -> None:
    """What CUDA autocast can hand the custom backward: half-precision h next to a bias (and a softmax) of
    another dtype. It computes in float32 and gives the gradient back in h's dtype."""
    from studentpack.transfer.relations import _RelationLogSumExp

    torch.manual_seed(0)
    flat = torch.randn(6, 9, 8)  # (N, T, d)
    bias = torch.zeros(6, 1, 9)  # (N, 1, T)
    bias[:, :, 7:] = float("-inf")
    reference = flat.clone().requires_grad_()
    lse_ref = _RelationLogSumExp.apply(reference, bias)
    lse_ref.sum().backward()
    half = flat.to(flat_dtype).requires_grad_()
    lse = _RelationLogSumExp.apply(half, bias.to(bias_dtype))
    lse.sum().backward()
    assert lse.dtype == torch.float32 and half.grad is not None and half.grad.dtype == flat_dtype
    torch.testing.assert_close(lse, lse_ref, atol=0.05, rtol=0.02)
    torch.testing.assert_close(half.grad.float(), reference.grad, atol=0.05, rtol=0.05)  # type: ignore[arg-type]
