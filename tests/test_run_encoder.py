"""adapter.run_encoder against a plain forward pass of a real tiny BERT: the captured Q/K/V and hidden
states are the model's own, and the layers it skips are really not run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from studentpack.model import adapter
from studentpack.model.features import FeatureRequest
from tests.tiny import make_bert

LAYERS = 4


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return make_bert(layers=LAYERS, seed=3)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 60, (3, 11), generator=generator)  # (B, T)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # one padded row: the mask must reach every layer
    mask[2, 4:] = 0
    return ids, mask


def reference(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, object]:
    """Every layer's input hidden state and its Q/K/V, from an ordinary full forward pass."""
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        qkv = {}
        for layer in range(1, LAYERS + 1):
            attention = model.encoder.layer[layer - 1].attention.self
            below = out.hidden_states[layer - 1]  # (B, T, H): layer L's input
            qkv[layer] = (attention.query(below), attention.key(below), attention.value(below))
    return {"hidden": out.hidden_states, "qkv": qkv}


@contextmanager
def counting_layer_calls(model: torch.nn.Module) -> Iterator[Counter[str]]:
    """How often each layer's FFN output block and attention-output block ran."""
    calls: Counter[str] = Counter()
    handles = []
    for i, layer in enumerate(model.encoder.layer, start=1):
        for part, module in (("ffn", layer.output), ("attn_out", layer.attention.output)):
            handles.append(module.register_forward_hook(lambda *_, key=f"{part}{i}": calls.update([key])))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize(
    ("hidden", "qkv", "runs_through"),
    [
        ((), (3,), 2),  # MHA alone: layers 1-2 run, then only layer 3's projections
        ((2,), (1, 3), 2),  # hidden below the top Q/K/V: still stops after layer 2
        ((4,), (2,), 4),  # a hidden state above the Q/K/V: the whole model runs
        ((0, 4), (4,), 4),  # Q/K/V and hidden of the top layer: everything runs
        ((1,), (), 4),
    ],
)
def test_features_equal_a_plain_forward_and_skipped_layers_do_not_run(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], hidden: tuple[int, ...],
    qkv: tuple[int, ...], runs_through: int,
) -> None:  # fmt: skip
    ids, mask = batch
    expected = reference(model, ids, mask)
    request = FeatureRequest(hidden_layers=frozenset(hidden), qkv_layers=frozenset(qkv))
    with torch.no_grad(), counting_layer_calls(model) as calls:
        features, last = adapter.run_encoder(model, ids, mask, request)
    assert sorted(features.hidden) == sorted(hidden) and sorted(features.qkv) == sorted(qkv)
    for layer in hidden:
        torch.testing.assert_close(features.hidden[layer], expected["hidden"][layer])  # type: ignore[index]
    for layer in qkv:
        for got, want, name in zip(features.qkv[layer], expected["qkv"][layer], "QKV", strict=True):  # type: ignore[index]
            torch.testing.assert_close(got, want, msg=f"layer {layer} {name}")
    torch.testing.assert_close(last, expected["hidden"][runs_through])  # type: ignore[index]
    assert calls == Counter({f"{part}{i}": 1 for i in range(1, runs_through + 1) for part in ("ffn", "attn_out")})
    assert len(model.encoder.layer) == LAYERS  # the skipped layers are put back


def test_mlm_logits_need_the_whole_model_even_with_qkv_on_top(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    ids, mask = batch
    request = FeatureRequest(qkv_layers=frozenset({3}), mlm_logits=True)
    with torch.no_grad():
        _, last = adapter.run_encoder(model, ids, mask, request)
    torch.testing.assert_close(last, reference(model, ids, mask)["hidden"][LAYERS])  # type: ignore[index]


def test_a_failing_forward_still_restores_the_layers_and_removes_the_hooks(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    ids, mask = batch
    request = FeatureRequest(qkv_layers=frozenset({1, 3}))
    with pytest.raises((RuntimeError, IndexError)):
        adapter.run_encoder(model, ids[:, :0], mask[:, :0], request)  # zero-length batch: the forward fails
    assert len(model.encoder.layer) == LAYERS
    query = model.encoder.layer[0].attention.self.query
    assert not query._forward_hooks
