"""Each transfer: zero for an exact copy, positive otherwise, and it decreases when optimised."""

from __future__ import annotations

import copy

import pytest
import torch

from studentpack.distill.head_fit import new_head_like
from studentpack.model.mlm_head import MLMHead
from studentpack.transfer.base import Transfer
from studentpack.transfer.hidden import HiddenTransfer
from studentpack.transfer.layer_map import LayerMap
from studentpack.transfer.output import OutputTransfer
from studentpack.transfer.relations import RelationTransfer
from tests.tiny import make_bert
from tests.transfer_fixtures import features, loss_of, masked, padded_batch

LAYERS = 3


def make_transfer(name: str, student_width: int = 32, student_layers: int = LAYERS) -> Transfer:
    if name == "mha":
        return RelationTransfer(student_layer=student_layers, teacher_layer=LAYERS, relation_heads=8)
    if name == "hs":
        layer_map = LayerMap.build("uniform", student_layers, LAYERS, embeddings=True)
        return HiddenTransfer(layer_map, student_width, 32, "mse")
    if name == "hs-cosine":
        return HiddenTransfer(LayerMap.build("uniform-last", student_layers, LAYERS), student_width, 32, "cosine")
    return OutputTransfer(temperature=2.0, mlm_weight=0.0)


def evaluate(
    transfer: Transfer,
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    s_head: MLMHead | None,
    t_head: MLMHead | None,
    offset: int = 0,
) -> dict[str, torch.Tensor]:
    ids, mask = padded_batch(4, offset)
    batch = masked(ids, mask, seed=offset) if s_head is not None else None
    with torch.no_grad():
        t_feats = features(teacher, transfer, "teacher", ids, mask, t_head, batch)
    s_feats = features(student, transfer, "student", ids, mask, s_head, batch)
    return transfer(s_feats, t_feats)


def heads_for(name: str, student: torch.nn.Module, teacher: torch.nn.Module) -> tuple[MLMHead | None, MLMHead | None]:
    if name != "od":
        return None, None
    torch.manual_seed(5)
    t_head = new_head_like(teacher).eval()
    return copy.deepcopy(t_head), t_head


@pytest.mark.parametrize("name", ["mha", "hs", "hs-cosine", "od"])
def test_zero_for_an_exact_copy(name: str) -> None:
    teacher = make_bert(layers=LAYERS, seed=0)
    student = copy.deepcopy(teacher)
    transfer = make_transfer(name, student_layers=LAYERS)
    s_head, t_head = heads_for(name, student, teacher)
    terms = evaluate(transfer, student, teacher, s_head, t_head)
    for term, value in terms.items():
        assert abs(value.item()) < 1e-5, f"{term} = {value.item()}"


@pytest.mark.parametrize("name", ["mha", "hs", "hs-cosine", "od"])
def test_positive_for_a_different_student(name: str) -> None:
    teacher = make_bert(layers=LAYERS, seed=0)
    student = make_bert(layers=2, seed=1)
    transfer = make_transfer(name, student_layers=2)
    s_head, t_head = heads_for(name, student, teacher)
    if s_head is not None:
        s_head = new_head_like(student)
    terms = evaluate(transfer, student, teacher, s_head, t_head)
    for term, value in terms.items():
        assert value.item() > 1e-4, f"{term} = {value.item()}"


@pytest.mark.parametrize("name", ["mha", "hs", "od"])
@pytest.mark.parametrize("student_width", [32, 16])
def test_decreases_over_30_steps(name: str, student_width: int) -> None:
    """Train a 2-layer student (narrower too: HS then learns a projection) and score a held-out batch."""
    teacher = make_bert(layers=LAYERS, seed=0)
    student = make_bert(layers=2, hidden=student_width, heads=4, intermediate=2 * student_width, seed=1).train()
    transfer = make_transfer(name, student_width=student_width, student_layers=2)
    _, t_head = heads_for(name, student, teacher)
    s_head = new_head_like(student) if name == "od" else None
    params = [*student.parameters(), *transfer.parameters(), *(s_head.parameters() if s_head else [])]
    if name == "hs" and student_width != 32:
        assert len(list(transfer.parameters())) > 0, "narrow students need a learned projection"
    optimizer = torch.optim.Adam(params, lr=3e-3)

    def held_out() -> float:
        student.eval()
        with torch.no_grad():
            value = loss_of(evaluate(transfer, student, teacher, s_head, t_head, offset=8)).item()
        student.train()
        return value

    before = held_out()
    for step in range(30):
        loss = loss_of(evaluate(transfer, student, teacher, s_head, t_head, offset=step % 2 * 4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out()
    assert after < 0.8 * before, f"{name}: {before:.4f} -> {after:.4f}"


def test_hs_padding_is_excluded() -> None:
    teacher = make_bert(layers=LAYERS, seed=0)
    student = make_bert(layers=2, seed=1)
    transfer = make_transfer("hs", student_layers=2)
    ids, mask = padded_batch(4)
    s_feats = features(student, transfer, "student", ids, mask)
    t_feats = features(teacher, transfer, "teacher", ids, mask)
    base = transfer(s_feats, t_feats)["hs"]
    pad = ~mask.bool()
    for layer in t_feats.hidden:
        t_feats.hidden[layer] = t_feats.hidden[layer].masked_fill(pad.unsqueeze(-1), 1e4)
    torch.testing.assert_close(transfer(s_feats, t_feats)["hs"], base)


def test_od_hard_mlm_term() -> None:
    teacher = make_bert(layers=LAYERS, seed=0)
    student = make_bert(layers=2, seed=1)
    transfer = OutputTransfer(temperature=1.0, mlm_weight=0.5)
    t_head = new_head_like(teacher)
    terms = evaluate(transfer, student, teacher, new_head_like(student), t_head)
    assert set(terms) == {"od", "mlm"} and terms["mlm"].item() > 0


def test_soft_kl_matches_the_textbook_formula_and_gradient() -> None:
    import torch.nn.functional as F

    from studentpack.transfer.output import soft_kl

    gen = torch.Generator().manual_seed(0)
    student = (torch.randn(7, 50, generator=gen, dtype=torch.float64) * 4).requires_grad_(True)
    teacher = torch.randn(7, 50, generator=gen, dtype=torch.float64) * 4
    reference = student.detach().clone().requires_grad_(True)
    log_ps = F.log_softmax(reference / 2.0, dim=-1)
    log_pt = F.log_softmax(teacher / 2.0, dim=-1)
    want = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean() * 4.0
    got = soft_kl(student, teacher, 2.0)
    torch.testing.assert_close(got, want)
    got.backward()
    want.backward()
    assert student.grad is not None and reference.grad is not None
    torch.testing.assert_close(student.grad, reference.grad)


def test_embedding_transfer_is_the_mse_of_normalised_pooled_embeddings() -> None:
    import torch.nn.functional as F

    from studentpack.model.features import Features
    from studentpack.transfer.embedding import EmbeddingTransfer

    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # (B, T)
    student_states = torch.randn(2, 4, 8, generator=gen)
    teacher_states = torch.randn(2, 4, 8, generator=gen)
    transfer = EmbeddingTransfer(student_layers=2, teacher_layers=3, student_width=8, teacher_width=8)
    same = transfer(Features(mask, hidden={2: teacher_states}), Features(mask, hidden={3: teacher_states}))["emb"]
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    padding_changed = teacher_states.clone()
    padding_changed[0, 3] += 100.0  # a padded position: pooling must ignore it
    loss = transfer(Features(mask, hidden={2: student_states}), Features(mask, hidden={3: padding_changed}))["emb"]
    s = F.normalize(torch.stack([student_states[0, :3].mean(0), student_states[1, :2].mean(0)]), dim=-1)
    t = F.normalize(torch.stack([teacher_states[0, :3].mean(0), teacher_states[1, :2].mean(0)]), dim=-1)
    assert loss.item() == pytest.approx(((s - t) ** 2).mean().item(), rel=1e-6)
    narrow = EmbeddingTransfer(2, 3, student_width=4, teacher_width=8)
    assert narrow.projection is not None and narrow.describe()["projected"] is True


def test_every_loss_term_has_a_weight_and_unknown_ones_are_errors() -> None:
    from types import SimpleNamespace

    from studentpack.distill.bundle import term_weight

    plan = SimpleNamespace(config=SimpleNamespace(mha_weight=1.0, hs_weight=2.0, od_weight=3.0, emb_weight=4.0))
    assert [term_weight(plan, t) for t in ("mha_qq", "hs", "od", "mlm", "emb")] == [1.0, 2.0, 3.0, 3.0, 4.0]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no weight"):
        term_weight(plan, "odd")  # type: ignore[arg-type]
