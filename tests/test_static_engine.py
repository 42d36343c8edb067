"""Static students at run time: the engine, `eval` and `serve` over a Model2Vec directory, and the refusals
of broken ones. The directory is random rows over the tiny test tokenizer, written by save_static."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from studentpack.engines import open_model
from studentpack.engines.static import StaticEncoder
from studentpack.ground.provenance import hash_directory
from studentpack.model.static_format import save_static
from studentpack.serving.static_backend import PLATFORM
from tests.test_eval_support import run_cli, sentence_pairs, stsb_tsv
from tests.test_serve_e2e import Server, cli, start
from tests.tiny import SENTENCES

DIM = 16
# beside the tiny vocabulary's sentences: an empty text, one of unknown tokens only, one with unknowns inside,
# and one of exactly 4 tokens (not cut at max_length 4)
TEXTS = [*SENTENCES, "", "☃ ☃", "the ☃ film was good", "the film was good"]


def contiguous_tokenizer(tokenizer_json: Path) -> Any:
    """The tiny tokenizer with its ids renumbered 0..V-1: its vocabulary lists a few tokens twice, so its ids
    skip numbers, and Model2Vec wants one row per vocabulary entry."""
    from tokenizers import Tokenizer

    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    ordered = sorted(spec["model"]["vocab"].items(), key=lambda item: item[1])
    spec["model"]["vocab"] = {token: i for i, (token, _) in enumerate(ordered)}
    assert all(spec["model"]["vocab"][t["content"]] == t["id"] for t in spec["added_tokens"])  # specials stay
    return Tokenizer.from_str(json.dumps(spec))


def write_static_dir(tokenizer_json: Path, out: Path, rows_less: int = 0, seed: int = 0, renumber: bool = True) -> Path:
    """One random row per vocabulary entry (less `rows_less`); `renumber` False keeps the tiny vocabulary's
    skipped ids, so its last ids fall past the table."""
    from tokenizers import Tokenizer

    tokenizer = contiguous_tokenizer(tokenizer_json) if renumber else Tokenizer.from_file(str(tokenizer_json))
    rows = np.random.default_rng(seed).standard_normal((tokenizer.get_vocab_size() - rows_less, DIM))
    out.mkdir(parents=True)
    save_static(out, rows.astype(np.float32), tokenizer, {})
    return out


@pytest.fixture(scope="module")
def static_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_static_dir(tiny_bert_dir / "tokenizer.json", tmp_path_factory.mktemp("static") / "m2v")


def reference(model_dir: Path, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Model2Vec's sentence vector written out: tokens without special ones, cut, [UNK] dropped, mean, L2."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    rows = load_file(str(model_dir / "model.safetensors"))["embeddings"]  # (V, D)
    unk = tokenizer.token_to_id("[UNK]")
    out = np.zeros((len(texts), rows.shape[1]), dtype=np.float64)
    for i, text in enumerate(texts):
        ids = [t for t in tokenizer.encode(text, add_special_tokens=False).ids[:max_length] if t != unk]
        if ids:
            mean = rows[ids].astype(np.float64).mean(axis=0)
            out[i] = mean / np.linalg.norm(mean)
    return out


# ------------------------------------------------------------------------------------------------ engine


def test_the_engine_gives_model2vecs_vectors(static_dir: Path) -> None:
    from model2vec import StaticModel

    encoder = open_model(str(static_dir), max_length=512)
    assert isinstance(encoder, StaticEncoder) and encoder.labels == [] and encoder.max_length == 512
    vectors = encoder.encode(TEXTS, batch_size=4)
    assert vectors.shape == (len(TEXTS), DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference(static_dir, TEXTS, 512), atol=1e-6)
    np.testing.assert_allclose(vectors, StaticModel.from_pretrained(str(static_dir)).encode(TEXTS), atol=1e-6)
    assert not vectors[len(SENTENCES)].any() and not vectors[len(SENTENCES) + 1].any()  # no known token: zeros
    assert encoder.truncated == 0
    # a batch that ends with texts of no known token (its last rows have nothing to sum)
    ending = ["the film was good", "☃ ☃", ""]
    np.testing.assert_allclose(encoder.encode(ending, batch_size=3), reference(static_dir, ending, 512), atol=1e-6)


def test_a_batch_pooled_in_several_grids_gives_the_same_rows(static_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studentpack.model import static_format

    whole = open_model(str(static_dir), max_length=512).encode(TEXTS, batch_size=len(TEXTS))
    monkeypatch.setattr(static_format, "GRID_TOKENS", 9)  # a grid of one or two texts at a time
    split = open_model(str(static_dir), max_length=512).encode(TEXTS, batch_size=len(TEXTS))
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_allclose(split, reference(static_dir, TEXTS, 512), atol=1e-6)
    table = open_model(str(static_dir)).table
    assert table.pool([]).shape == (0, DIM) and table.encode([]).shape == (0, DIM)


def test_max_length_cuts_tokens_and_counts_the_texts_cut(static_dir: Path) -> None:
    encoder = open_model(str(static_dir), max_length=4)
    vectors = encoder.encode(TEXTS, batch_size=3)
    np.testing.assert_allclose(vectors, reference(static_dir, TEXTS, 4), atol=1e-6)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(static_dir / "tokenizer.json"))
    longer = sum(len(tokenizer.encode(t, add_special_tokens=False).ids) > 4 for t in TEXTS)
    assert encoder.truncated == longer > 0


def test_the_model_limits_the_callers_max_length(static_dir: Path, tmp_path: Path) -> None:
    capped = shutil.copytree(static_dir, tmp_path / "capped")
    config = json.loads((capped / "config.json").read_text())
    (capped / "config.json").write_text(json.dumps({**config, "max_length": 5}))
    encoder = open_model(str(capped), max_length=128)
    assert encoder.max_length == 5
    np.testing.assert_allclose(encoder.encode(TEXTS), reference(capped, TEXTS, 5), atol=1e-6)


def test_a_static_model_refuses_pairs_and_the_gpu(static_dir: Path) -> None:
    from studentpack.ground.errors import UserError

    with pytest.raises(UserError, match="embedding model"):
        open_model(str(static_dir)).predict(["a"], text_pairs=["b"])
    with pytest.raises(UserError, match="CPU only"):
        open_model(str(static_dir), device="cuda")


# ------------------------------------------------------------------------------------------------- eval


def test_eval_scores_a_static_directory(static_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stsb = stsb_tsv(tmp_path / "stsb.tsv", [(a, b, float(i % 5)) for i, (a, b) in enumerate(sentence_pairs(20))])
    out = tmp_path / "eval.json"
    code, stdout, err = run_cli(capsys, str(static_dir), "--task", "stsb", "--data", str(stsb), "--out", str(out))
    assert code == 0, err
    assert "spearman" in stdout
    saved = json.loads(out.read_text())
    assert json.dumps(saved).count(hash_directory(static_dir)) >= 1  # the result names the files it scored


# ------------------------------------------------------------------------------------------------ serve


@pytest.fixture(scope="module")
def server(static_dir: Path) -> Iterator[Server]:
    server = start(cli(f"m2v={static_dir}", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning"))
    yield server
    assert server.stop() == 0, "".join(server.log)[-2000:]


def test_serve_answers_with_the_engines_vectors(server: Server, static_dir: Path) -> None:
    texts = [t for t in TEXTS if t]  # the server refuses empty strings; unknown tokens alone give zeros
    body = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m2v", "input": texts}, timeout=60)
    assert body.status_code == 200, body.text
    served = np.asarray([row["embedding"] for row in body.json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(served, open_model(str(static_dir)).encode(texts), atol=1e-6)
    request = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": texts[:3]}]}
    oip = httpx.post(f"{server.url}/v2/models/m2v/infer", json=request, timeout=60)
    assert oip.status_code == 200, oip.text
    (tensor,) = oip.json()["outputs"]
    np.testing.assert_allclose(np.asarray(tensor["data"]).reshape(3, DIM), served[:3], atol=1e-6)


def test_serve_describes_the_static_model(server: Server, static_dir: Path) -> None:
    meta = httpx.get(f"{server.url}/v2/models/m2v", timeout=30).json()
    assert meta["platform"] == PLATFORM == "model2vec_static"
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, DIM]}]
    params = meta["parameters"]
    assert params["kind"] == "embedding" and params["providers"] == ["numpy"] and params["max_length"] == 128
    assert params["batch_cosine"] == 1.0 and params["batching"] == "batched"  # batch invariant by construction
    assert params["sha256"] == hash_directory(static_dir)
    (listed,) = httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"]
    assert listed["id"] == "m2v" and listed["platform"] == PLATFORM
    assert 'model="m2v"' in httpx.get(f"{server.url}/metrics", timeout=30).text


def test_serve_refuses_texts_past_max_length_unless_truncating(server: Server) -> None:
    long = " ".join(["the film"] * 100)  # 200 tokens > 128
    refused = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m2v", "input": [long], "truncate": False})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "input_too_long", refused.text
    cut = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m2v", "input": [long]}, timeout=60)
    assert cut.status_code == 200, cut.text


# ------------------------------------------------------------------------------------------- bad input


def broken_dirs(tokenizer_json: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a broken static directory, what the refusal must say)"""
    corrupt = write_static_dir(tokenizer_json, root / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    short = write_static_dir(tokenizer_json, root / "short", rows_less=7)
    no_tokenizer = write_static_dir(tokenizer_json, root / "no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    gaps = write_static_dir(tokenizer_json, root / "gaps", renumber=False)  # as many rows as entries, ids beyond
    return {
        "corrupt": (corrupt, "cannot load the static model"),
        "short": (short, "rows"),
        "ids-past-the-table": (gaps, "ids up to"),
        "no-tokenizer": (no_tokenizer, "tokenizer.json"),
    }


@pytest.fixture(scope="module")
def broken(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return broken_dirs(tiny_bert_dir / "tokenizer.json", tmp_path_factory.mktemp("broken"))


def assert_one_line(rc: int, err: str, verb: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"studentpack {verb}: error:") and fragment in lines[0], err


@pytest.mark.parametrize("case", ["corrupt", "short", "ids-past-the-table", "no-tokenizer"])
def test_broken_static_directories_are_refused_in_one_line(
    case: str, broken: dict[str, tuple[Path, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, fragment = broken[case]
    stsb = stsb_tsv(tmp_path / "stsb.tsv", [(a, b, float(i % 5)) for i, (a, b) in enumerate(sentence_pairs(8))])
    code, _, err = run_cli(capsys, str(model), "--task", "stsb", "--data", str(stsb), "--no-save")
    assert_one_line(code, err, "eval", fragment)
    done = subprocess.run([sys.executable, "-m", "studentpack", "serve", str(model), "--port", "0"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert_one_line(done.returncode, done.stderr, "serve", fragment)


def test_serve_refuses_a_gpu_for_a_static_model_before_binding(
    static_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studentpack.cli import main

    rc = main(["serve", str(static_dir), "--device", "cuda", "--port", "0"])
    assert_one_line(rc, capsys.readouterr().err, "serve", "runs on the CPU only")
