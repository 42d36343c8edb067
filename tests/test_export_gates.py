"""Parity and accuracy gates: typed errors, padding ignored, and a failing variant lands only in rejected/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studentpack.export.onnx import EMBEDDING_OUTPUTS, GraphFacts
from studentpack.export.validate import (
    AccuracyError,
    Case,
    Gates,
    OutputNamesError,
    OutputShapeError,
    OutputValueError,
    check_accuracy,
    check_parity,
    parity_cases,
    parity_feeds,
)
from studentpack.ground.errors import UserError

INFO = GraphFacts(
    kind="embedding",
    model_type="bert",
    input_names=("input_ids", "attention_mask", "token_type_ids"),
    output_names=EMBEDDING_OUTPUTS,
    hidden_size=8,
    num_heads=2,
    num_layers=1,
    vocab_size=50,
    max_length=16,
)
CASES = [Case(1, 1), Case(3, 5), Case(2, 16)]


def _reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ids = feeds["input_ids"].astype(np.float32)
    states = np.stack([np.sin(ids + k) for k in range(8)], axis=-1)  # (B, T, 8)
    return {"token_embeddings": states, "sentence_embedding": states.mean(axis=1)}


def test_parity_cases_cover_one_and_the_maximum() -> None:
    cases = parity_cases(512)
    assert {c.length for c in cases} >= {1, 512} and len({c.batch for c in cases}) >= 3
    feeds = parity_feeds(INFO, Case(4, 16))
    mask = feeds["attention_mask"]
    assert mask[0].all() and mask.sum(axis=1).min() >= 1  # row 0 full, every row has a real token
    assert (feeds["input_ids"][mask == 0] == 0).all()


def test_matching_graph_passes_and_padding_is_ignored() -> None:
    def candidate(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = _reference(feeds)
        out["token_embeddings"] = np.where(feeds["attention_mask"][..., None] == 1, out["token_embeddings"], 123.0)
        return out

    figures = check_parity(_reference, candidate, list(EMBEDDING_OUTPUTS), INFO, 1e-4, CASES)
    assert figures["passed"] and figures["max_abs"] == 0.0 and len(figures["cases"]) == 3


def test_wrong_names_then_shapes_then_values() -> None:
    with pytest.raises(OutputNamesError) as names:
        check_parity(_reference, _reference, ["last_hidden_state", "sentence_embedding"], INFO, 1e-4, CASES)
    assert names.value.figures["outputs"] == ["last_hidden_state", "sentence_embedding"]

    def truncated(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = _reference(feeds)
        return {**out, "sentence_embedding": out["sentence_embedding"][:, :4]}

    with pytest.raises(OutputShapeError):
        check_parity(_reference, truncated, list(EMBEDDING_OUTPUTS), INFO, 1e-4, CASES)

    def off(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = _reference(feeds)
        return {**out, "token_embeddings": out["token_embeddings"] + 3e-4}

    with pytest.raises(OutputValueError) as values:
        check_parity(_reference, off, list(EMBEDDING_OUTPUTS), INFO, 1e-4, CASES)
    assert values.value.figures["max_abs"] == pytest.approx(3e-4, rel=1e-3)
    assert values.value.figures["passed"] is False


class _Fake:
    def __init__(self, vectors: np.ndarray, labels: list[str] | None = None) -> None:
        self.vectors = vectors
        self.labels = labels or []
        self.description = "fake"

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return self.vectors[: len(texts)]

    def predict(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return self.vectors[: len(texts)]


def test_accuracy_gate_embedding() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 16))
    close = _Fake(a + 0.01 * rng.normal(size=a.shape))
    figures = check_accuracy(_Fake(a), close, ["t"] * 20, Gates())
    assert figures["passed"] and figures["mean_cosine"] > 0.99
    b = a.copy()
    b[3] = -b[3]  # one sentence flipped: the worst cosine catches it though the mean stays high
    with pytest.raises(AccuracyError, match="worst cosine") as err:
        check_accuracy(_Fake(a), _Fake(b), ["t"] * 20, Gates(min_mean_cosine=0.5))
    assert err.value.figures["worst_cosine"] == pytest.approx(-1.0)


def test_accuracy_gate_classifier_and_task_delta() -> None:
    logits = np.array([[1.0, 0.0]] * 99 + [[0.0, 1.0]])
    flipped = logits.copy()
    flipped[:2] = [0.0, 1.0]
    ref, cand = _Fake(logits, ["neg", "pos"]), _Fake(flipped, ["neg", "pos"])
    with pytest.raises(AccuracyError, match="label agreement") as err:
        check_accuracy(ref, cand, ["t"] * 100, Gates())
    assert err.value.figures["label_agreement"] == pytest.approx(0.98)
    same = _Fake(logits, ["neg", "pos"])  # same labels, but scores worse on the task
    scores = {id(ref): 80.0, id(same): 78.5}
    with pytest.raises(AccuracyError, match=r"drops 1\.50 points") as task:
        check_accuracy(ref, same, ["t"] * 100, Gates(), lambda enc: scores[id(enc)], "x")
    assert task.value.figures["label_agreement"] == 1.0
    figures = check_accuracy(ref, ref, ["t"] * 100, Gates(), lambda enc: 80.0, "stsb")
    assert figures["task"] == {"name": "stsb", "reference": 80.0, "score": 80.0, "delta": 0.0, "max_delta": 1.0}


def test_gate_thresholds_are_validated() -> None:
    with pytest.raises(UserError):
        Gates(max_abs=-1)
    with pytest.raises(UserError):
        Gates(min_mean_cosine=1.5)


def test_forced_gate_failure_leaves_only_rejected(tiny_bert_dir: Path, tmp_path: Path, capsys) -> None:
    from studentpack.cli import main

    out = tmp_path / "onnx"
    code = main(
        [
            "export",
            str(tiny_bert_dir),
            "--onnx",
            "--out",
            str(out),
            "--variants",
            "int8-dynamic",
            "--min-mean-cosine",
            "1.0",
            "--sample-texts",
            "16",
            "--threads",
            "1",
        ]
    )
    assert code == 1
    assert "failed a gate: int8-dynamic" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["rejected"]
    assert [p.name for p in (out / "rejected").iterdir()] == ["int8-dynamic"]
    record = json.loads((out / "rejected" / "int8-dynamic" / "export.json").read_text())
    assert record["status"] == "rejected" and "mean cosine" in record["reason"]
    assert record["accuracy"]["passed"] is False and record["accuracy"]["mean_cosine"] < 1.0
    assert (out / "rejected" / "int8-dynamic" / "model.onnx").is_file()


def test_parity_failure_rejects_the_derived_variants_too(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    out = tmp_path / "onnx"
    options = ExportOptions(
        model=str(tiny_bert_dir),
        out=str(out),
        variants=("fp32", "int8-dynamic"),
        gates=Gates(max_abs=0.0),
        sample_texts=8,
        threads=1,
    )
    results = export_variants(options, log=lambda _line: None)
    assert [r.accepted for r in results] == [False, False]
    assert "max abs difference" in results[0].reason
    assert "failed parity" in results[1].reason
    assert sorted(p.name for p in (out / "rejected").iterdir()) == ["fp32", "int8-dynamic"]


def test_accuracy_gate_regression_head_uses_correlation() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(50, 1))
    figures = check_accuracy(_Fake(scores, ["score"]), _Fake(scores + 0.01, ["score"]), ["t"] * 50, Gates())
    assert figures["pearson"] == pytest.approx(1.0) and "label_agreement" not in figures
    with pytest.raises(AccuracyError, match="output correlation"):
        check_accuracy(_Fake(scores, ["score"]), _Fake(rng.normal(size=(50, 1)), ["score"]), ["t"] * 50, Gates())
    # perfectly correlated but wrong: 2x + 0.5 must not pass
    with pytest.raises(AccuracyError, match="mean output error") as failed:
        check_accuracy(_Fake(scores, ["score"]), _Fake(2 * scores + 0.5, ["score"]), ["t"] * 50, Gates())
    assert failed.value.figures["pearson"] == pytest.approx(1.0)


class _PaddingBug:
    """Encodes like a real runtime (length-sorted batches), but rows in a batch of mixed lengths go wrong."""

    description = "padding bug"

    def __init__(self, broken: bool) -> None:
        self.broken = broken
        self.labels: list[str] = []

    def encode(self, texts: list[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        from studentpack.engines import length_sorted_batches, scatter_rows

        batches = length_sorted_batches(texts, batch_size)
        outputs = []
        for batch in batches:
            rows = np.stack([np.random.default_rng(len(t)).normal(size=8) for t in batch.texts])  # (B, 8)
            if self.broken and len({len(t) for t in batch.texts}) > 1:
                rows = -rows  # what ignoring the attention mask on padded rows looks like
            outputs.append(rows)
        return scatter_rows(batches, outputs, len(texts))


def test_a_padding_bug_is_caught_by_the_mixed_length_batch() -> None:
    texts = ["a much longer sentence that pads every short one " * 3] * 32 + ["short"] * 64
    figures = check_accuracy(_PaddingBug(False), _PaddingBug(False), texts, Gates())
    assert figures["mixed_batch_worst_cosine"] == pytest.approx(1.0)
    # length-sorted batches of 32 are uniform here: only the one mixed batch exposes the bug
    with pytest.raises(AccuracyError, match="mixed-length batch") as err:
        check_accuracy(_PaddingBug(False), _PaddingBug(True), texts, Gates())
    assert err.value.figures["mean_cosine"] == pytest.approx(1.0)
