"""`studentpack distill --method static` on the tiny teacher: a Model2Vec directory that model2vec and our
loader read alike, PCA and SIF as asked, training that lowers its loss, and bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studentpack.cli import main
from studentpack.distill.static import backend_tokenizer, fit_pca, kept_tokens
from studentpack.model.static_format import load_static
from tests.test_distill_cli import _one_line_error
from tests.tiny import SENTENCES

TEXTS = [*SENTENCES, "an unknown word: zebra!", ""]


def distill(teacher: Path, out: Path, *extra: str) -> int:
    return main(["distill", "--method", "static", "--teacher", str(teacher), "--out", str(out), "--quiet", *extra])


def test_model2vec_reads_the_student_as_we_do(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from model2vec import StaticModel

    out = tmp_path / "run"
    assert distill(tiny_bert_dir, out, "--static-steps", "0") == 0
    student = out / "student"
    ours = load_static(student)
    assert ours.dim == 32  # the default 256 is wider than the teacher: its width is kept
    theirs = StaticModel.from_pretrained(str(student)).encode(TEXTS)
    np.testing.assert_allclose(theirs, ours.encode(TEXTS), atol=1e-6)
    assert np.abs(ours.encode(SENTENCES)).sum() > 0
    manifest = json.loads((student / "studentpack.json").read_text())
    assert manifest["method"] == "static" and manifest["student"]["kind"] == "static"
    assert manifest["training"] is None
    assert json.loads((out / "distill_config.json").read_text())["method"] == "static"


def test_pca_dim_and_sif_are_respected(tiny_bert_dir: Path, tmp_path: Path) -> None:
    plain = ("--static-dim", "16", "--static-steps", "0")
    assert distill(tiny_bert_dir, tmp_path / "sif", *plain) == 0
    assert distill(tiny_bert_dir, tmp_path / "flat", *plain, "--static-sif", "0") == 0
    weighted = load_static(tmp_path / "sif" / "student")
    flat = load_static(tmp_path / "flat" / "student")
    assert weighted.dim == flat.dim == 16
    # the same PCA, then row i scaled by a / (a + p_i), p the Zipf estimate from the token's rank
    kept = kept_tokens(backend_tokenizer(tiny_bert_dir))  # ranks count the distilled tokens only
    weights = np.ones(len(kept))
    zipf = 1 / np.arange(2, kept.sum() + 2)  # Model2Vec's estimate: p proportional to 1 / (rank + 1)
    weights[kept] = 1e-4 / (1e-4 + zipf / zipf.sum())
    expected = flat.rows * weights[:, None]
    np.testing.assert_allclose(weighted.rows, expected, rtol=1e-5, atol=1e-7)


def test_each_token_runs_alone_between_its_specials(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Model2Vec's token pass: `[CLS] token [SEP]`, the mean over the three positions, no padding, even
    when the teacher's tokenizer.json pads every text to a fixed length."""
    import shutil

    import torch
    from tokenizers import Tokenizer

    from studentpack.distill.static import backend_tokenizer, kept_tokens, token_vectors
    from studentpack.model.adapter import load_encoder

    teacher = tmp_path / "padded"
    shutil.copytree(tiny_bert_dir, teacher)
    padded = Tokenizer.from_file(str(teacher / "tokenizer.json"))
    padded.enable_padding(length=16)
    padded.enable_truncation(16)
    padded.save(str(teacher / "tokenizer.json"))
    tokenizer = backend_tokenizer(teacher)
    model = load_encoder(teacher)
    vectors = token_vectors(model, tokenizer, kept_tokens(tokenizer), progress=False)  # (V, H)
    cls, sep, film = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "film"))
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([[cls, film, sep]])).last_hidden_state  # (1, 3, H)
    np.testing.assert_allclose(vectors[film], hidden[0].mean(dim=0).numpy(), atol=1e-5)


def test_pca_keeps_the_largest_variance_first() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    mean, components, explained = fit_pca(x, 2)
    assert components.shape == (2, 6)
    np.testing.assert_allclose(np.abs(components[:, :2]), np.eye(2), atol=0.05)
    assert 0.9 < explained < 1.0
    np.testing.assert_allclose(mean, x.mean(axis=0))


def test_training_lowers_its_loss(tiny_bert_dir: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = distill(tiny_bert_dir, out, "--corpus", str(corpus), "--static-steps", "30", "--threads", "1")
    assert rc == 0
    training = json.loads((out / "student" / "studentpack.json").read_text())["training"]
    assert training["final_loss"] < 0.5 * training["initial_loss"]
    assert training["lines"] > 0 and training["tokens"] > training["lines"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 31))
    assert np.mean([r["loss"] for r in log[-5:]]) < np.mean([r["loss"] for r in log[:5]])
    plain = tmp_path / "plain"
    assert distill(tiny_bert_dir, plain, "--static-steps", "0") == 0
    assert not np.allclose(load_static(out / "student").rows, load_static(plain / "student").rows)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--method", "static+hs"], "combines with no other method"),
        (["--method", "hs+static"], "combines with no other method"),
        (["--static-dim", "0"], "--static-dim must be at least 1"),
        (["--static-dim", "-3"], "--static-dim must be at least 1"),
        (["--static-sif", "1.5"], "--static-sif must be in [0, 1)"),
        (["--static-steps", "-1"], "--static-steps must be >= 0"),
        (["--layer-map", "1:2"], "does not use --layer-map"),
        (["--student-layers", "2"], "does not use --student-layers"),
        (["--steps", "10"], "does not use --steps"),
        (["--allow-pickle"], "does not use --allow-pickle"),
        (["--teacher", "MISSING"], "teacher path not found"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    extra: list[str], fragment: str, tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    extra = [str(tmp_path / "nope" / "teacher") if x == "MISSING" else x for x in extra]
    _one_line_error(capsys, distill(tiny_bert_dir, out, *extra), fragment)
    assert not out.exists(), "a refused run must not create its output directory"


def test_static_settings_need_the_static_method(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["distill", "--method", "hs", "--teacher", str(tiny_bert_dir), "--static-dim", "16",
               "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert rc == 2
    assert "--static-dim is a setting of --method static only" in capsys.readouterr().err
