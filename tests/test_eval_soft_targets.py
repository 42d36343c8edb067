"""Task distillation (`eval --mode finetune --teacher DIR`): the loss mix, the teacher's outputs row by row,
and a student that follows a teacher whose labels contradict the gold ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from studentpack.ground.errors import UserError
from studentpack.tasks.model_ref import ModelRef
from studentpack.tasks.sets import LabeledSet, PairSet
from studentpack.tasks.soft_targets import SoftTargets, mixed_loss, teacher_logits
from tests.test_eval_support import KeywordClassifier, TableEncoder, run_cli, run_json, sentiment_rows, write_table

TEACHER = ModelRef("t", "t", "torch")


def soft(logits: np.ndarray, weight: float, temperature: float = 2.0) -> SoftTargets:
    return SoftTargets(logits.astype(np.float32), weight, temperature, "t", 0.0)


def test_mixed_loss_against_a_numpy_reference() -> None:
    student = torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.1, 0.3]])  # (B, C)
    taught = np.array([[9.0, 9.0], [-1.0, 1.0], [3.0, 0.0], [0.0, 2.0]])  # (N, C); row 0 is not in the batch
    rows = np.array([1, 2, 3])
    gold = torch.tensor(0.7)
    t = 2.0
    p = np.exp(taught[rows] / t) / np.exp(taught[rows] / t).sum(axis=1, keepdims=True)
    q = np.exp(student.numpy() / t) / np.exp(student.numpy() / t).sum(axis=1, keepdims=True)
    kl = float(np.sum(p * np.log(p / q)) / len(rows)) * t * t
    got = mixed_loss(student, gold, soft(taught, 0.25, t), rows, regression=False)
    assert float(got) == pytest.approx(0.75 * 0.7 + 0.25 * kl, rel=1e-5)
    assert float(mixed_loss(student, gold, soft(taught, 0.0, t), rows, regression=False)) == pytest.approx(0.7)


def test_mixed_loss_regression_is_squared_error_to_the_teacher() -> None:
    student = torch.tensor([[1.0], [3.0]])  # (B, 1)
    taught = np.array([[2.0], [0.0], [3.5]])  # (N, 1)
    got = mixed_loss(student, torch.tensor(0.0), soft(taught, 1.0), np.array([0, 2]), regression=True)
    assert float(got) == pytest.approx(((1.0 - 2.0) ** 2 + (3.0 - 3.5) ** 2) / 2)


def test_teacher_logits_keep_row_order_and_pass_pairs() -> None:
    texts = ["so good", "bad", "good good", "meh"]
    got = teacher_logits(TEACHER, ["negative", "positive"], LabeledSet("m", texts, np.zeros(4)), KeywordClassifier(), 2,
                         False)  # fmt: skip
    assert got.argmax(axis=1).tolist() == [1, 0, 1, 0]

    class PairEcho(KeywordClassifier):
        def __init__(self) -> None:
            self.labels = ["similarity"]

        def predict(self, texts, batch_size=32, progress=False, text_pairs=None):
            return np.array([[len(a) + 10 * len(b)] for a, b in zip(texts, text_pairs, strict=True)], np.float32)

    pairs = PairSet("m", ["a", "bb"], ["ccc", "d"], np.zeros(2))
    assert teacher_logits(TEACHER, ["similarity"], pairs, PairEcho(), 2, False)[:, 0].tolist() == [31.0, 12.0]


def test_teacher_logits_refuse_an_embedder_and_other_labels() -> None:
    data = LabeledSet("m", ["a"], np.zeros(1))
    with pytest.raises(UserError, match="is an embedding model"):
        teacher_logits(TEACHER, ["negative", "positive"], data, TableEncoder({"a": np.ones(3)}), 2, False)
    with pytest.raises(UserError, match="has 2 outputs"):
        teacher_logits(TEACHER, ["similarity"], data, KeywordClassifier(), 2, False)


FINETUNE = ["--epochs", "10", "--lr", "1e-3", "--train-batch-size", "4", "--seed", "3", "--no-save"]


def test_student_follows_a_teacher_that_contradicts_the_gold_labels(
    capsys: pytest.CaptureFixture[str], tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """A teacher trained on flipped labels: with all the loss on it, the student learns the flip (accuracy near
    0 on the true labels); with none, the gold labels (near 100). Rows out of step with the teacher's would
    leave the student near chance."""
    true, flipped = tmp_path / "true", tmp_path / "flipped"
    for root, flip in ((true, False), (flipped, True)):
        rows = [(1 - label if flip else label, text) for label, text in sentiment_rows(range(1, 20, 2))]
        write_table(root / "train.tsv", ["label", "sentence"], rows)
        shutil.copy(root / "train.tsv", root / "dev.tsv")
    teacher = tmp_path / "teacher"
    taught = [str(tiny_bert_dir), "--task", "sst2", "--mode", "finetune", "--out", str(teacher), *FINETUNE[:-1]]
    assert run_json(capsys, *taught, "--data", str(flipped))["value"] >= 90.0
    student = [str(tiny_bert_dir), "--task", "sst2", "--data", str(true), "--mode", "finetune", *FINETUNE]
    follower = run_json(capsys, *student, "--teacher", str(teacher), "--soft-weight", "1")
    assert follower["value"] <= 10.0
    assert follower["details"]["soft_targets"]["teacher"] == str(teacher)
    assert follower["details"]["soft_targets"]["weight"] == 1.0
    assert run_json(capsys, *student, "--teacher", str(teacher), "--soft-weight", "0")["value"] >= 90.0


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--mode", "finetune", "--teacher", "{model}"], "is an embedding model"),
        (["--mode", "probe", "--teacher", "{model}"], "--teacher applies to"),
        (["--mode", "finetune", "--soft-weight", "1.5"], "share of the loss"),
        (["--mode", "finetune", "--temperature", "0"], "--temperature must be positive"),
    ],
)
def test_bad_teacher_settings_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tiny_bert_dir: Path, tmp_path: Path, extra: list[str], said: str
) -> None:
    data = write_table(tmp_path / "d" / "train.tsv", ["label", "sentence"], sentiment_rows([1, 2])).parent
    shutil.copy(data / "train.tsv", data / "dev.tsv")
    args = [str(tiny_bert_dir), "--task", "sst2", "--data", str(data), "--no-save"]
    code, out, err = run_cli(capsys, *args, *[e.format(model=tiny_bert_dir) for e in extra])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and said in err, err
