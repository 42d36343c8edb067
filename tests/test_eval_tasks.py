"""Task code over protocol objects whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studentpack.engines import TextClassifier, TextEncoder
from studentpack.ground.errors import UserError
from studentpack.tasks import agreement, metrics, sst2, stsb
from studentpack.tasks.sets import LabeledSet, PairSet, TextSet
from tests.test_eval_support import AngleEncoder, KeywordClassifier, TableEncoder


def test_fakes_implement_the_protocol() -> None:
    assert isinstance(AngleEncoder(), TextEncoder)
    assert isinstance(KeywordClassifier(), TextClassifier)


def angle_pairs(scores: list[float]) -> PairSet:
    # cos(first, second) = cos((5 - score) / 5 * pi / 2): strictly increasing in the score
    second = [f"v={(5 - s) / 5 * math.pi / 2}" for s in scores]
    return PairSet("mem", ["v=0"] * len(scores), second, np.array(scores))


def test_stsb_spearman_is_exactly_one_for_a_monotone_model() -> None:
    scores = [0.0, 0.4, 1.3, 2.2, 2.5, 3.9, 4.1, 5.0]
    result = stsb.zeroshot(AngleEncoder(), angle_pairs(scores))
    assert result["spearman"] == pytest.approx(1.0, abs=1e-12)
    assert result["pearson"] < 1.0  # cosine is not linear in the score


def test_stsb_spearman_is_minus_one_when_reversed_and_pairs_keep_their_order() -> None:
    scores = [5.0, 4.0, 3.0, 1.0, 0.5]
    pairs = angle_pairs(scores)
    reversed_gold = PairSet("mem", pairs.first, pairs.second, 5.0 - pairs.scores)
    assert stsb.zeroshot(AngleEncoder(), reversed_gold)["spearman"] == pytest.approx(-1.0, abs=1e-12)


def test_stsb_constant_prediction_is_undefined_not_a_crash() -> None:
    pairs = PairSet("mem", ["v=0"] * 3, ["v=0"] * 3, np.array([1.0, 2.0, 3.0]))
    assert math.isnan(stsb.zeroshot(AngleEncoder(), pairs)["spearman"])


def test_probe_separates_linearly_separable_embeddings() -> None:
    rng = np.random.default_rng(0)
    table, texts, labels = {}, [], []
    for i in range(80):
        label = i % 2
        vec = rng.normal(size=8)
        vec[0] = (2.0 + abs(vec[0])) * (1 if label else -1)  # the class sits in the sign of dimension 0
        table[f"t{i}"] = vec
        texts.append(f"t{i}")
        labels.append(label)
    data = LabeledSet("mem", texts, np.array(labels))
    train, dev = data.take(range(60)), data.take(range(60, 80))
    result, details = sst2.probe(TableEncoder(table), train, dev)
    assert result["accuracy"] == 1.0
    assert details["probe_converged"] is True


def test_probe_on_label_noise_is_near_chance() -> None:
    rng = np.random.default_rng(1)
    table = {f"t{i}": rng.normal(size=4) for i in range(400)}
    data = LabeledSet("mem", list(table), rng.integers(0, 2, size=400))
    result, _ = sst2.probe(TableEncoder(table), data.take(range(300)), data.take(range(300, 400)))
    assert 0.3 < result["accuracy"] < 0.7


def test_probe_needs_two_classes() -> None:
    data = LabeledSet("mem", ["v=0", "v=1"], np.array([1, 1]))
    with pytest.raises(UserError, match="both classes"):
        sst2.probe(AngleEncoder(), data, data)


def test_classifier_accuracy() -> None:
    dev = LabeledSet("mem", ["good", "bad", "good one", "meh"], np.array([1, 0, 0, 0]))
    assert sst2.predict(KeywordClassifier(), dev)["accuracy"] == 0.75


def test_agreement_self_is_one_and_perturbed_is_lower() -> None:
    rng = np.random.default_rng(0)
    base = {f"t{i}": rng.normal(size=16) for i in range(40)}
    texts = TextSet("mem", list(base))
    same, _ = agreement.agreement(TableEncoder(base), TableEncoder(base), texts)
    assert same["rank_spearman"] == 1.0 and same["recall_at_10"] == 1.0
    assert next(iter(same)) == "recall_at_10"  # the task's headline metric comes first
    assert same["mean_cosine"] == pytest.approx(1.0, abs=1e-6)
    scores, recalls = [], []
    for noise in (0.1, 0.5, 2.0):
        noisy = {k: v + noise * rng.normal(size=16) for k, v in base.items()}
        result, _ = agreement.agreement(TableEncoder(noisy), TableEncoder(base), texts)
        scores.append(result["rank_spearman"])
        recalls.append(result["recall_at_10"])
        assert result["mean_cosine"] is not None and result["mean_cosine"] < 1.0
    assert 1.0 > scores[0] > scores[1] > scores[2]
    assert 1.0 > recalls[0] > recalls[1] > recalls[2]


def test_neighbour_recall_counts_shared_neighbours() -> None:
    """Points on a line: each one's nearest neighbours are the points beside it."""
    angles = np.linspace(0.0, 1.5, 12)
    teacher = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (12, 2), neighbours by angle
    assert metrics.neighbour_recall(teacher, teacher, k=2) == 1.0
    swapped = teacher.copy()
    swapped[[0, 11]] = swapped[[11, 0]]  # the two ends trade places: their neighbourhoods change
    # rows 0 and 11 keep none of their 2 neighbours; rows 1 and 10 keep one of two (their far neighbour)
    expected = (12 - 2 - 1) / 12
    assert metrics.neighbour_recall(swapped, teacher, k=2) == pytest.approx(expected)
    with pytest.raises(ValueError, match="more than 2 texts"):
        metrics.neighbour_recall(teacher[:2], teacher[:2], k=2)


def test_agreement_across_widths_ranks_but_has_no_cosine() -> None:
    rng = np.random.default_rng(0)
    base = {f"t{i}": rng.normal(size=8) for i in range(20)}
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    wider = {k: np.concatenate([rotation @ v, np.zeros(4)]) for k, v in base.items()}  # same geometry, 12 wide
    result, details = agreement.agreement(TableEncoder(wider), TableEncoder(base), TextSet("mem", list(base)))
    assert result["rank_spearman"] == pytest.approx(1.0)
    assert result["mean_cosine"] is None
    assert details["widths"] == [12, 8] and details["pairs_ranked"] == 190


def test_pairwise_cosines_order() -> None:
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(metrics.pairwise_cosines(e), [0.0, math.sqrt(0.5), math.sqrt(0.5)])


def test_regression_head_starts_at_the_mean_target(tiny_bert_dir) -> None:
    from studentpack.model import adapter
    from studentpack.tasks import finetune

    model = finetune.build(tiny_bert_dir, ["similarity"], "cpu", 32, seed=0)
    targets = np.array([1.0, 2.0, 4.5, 4.5])
    settings = finetune.TrainSettings(epochs=1, lr=1e-12, batch_size=4, warmup=0.0)
    log = finetune.train(model, ["a", "b", "c", "d"], targets, settings, text_pairs=["e", "f", "g", "h"])
    assert float(adapter.head_output_layer(model.model).bias.detach()[0]) == pytest.approx(3.0, abs=1e-6)
    assert log.steps == 1 and log.first_loss < np.mean((targets - 0.0) ** 2) / 2  # near the variance, not mean^2
