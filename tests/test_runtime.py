"""OrtSession / OrtEncoder: feeds, scoring through the encode protocol, and the CUDA-fallback guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studentpack.engines import TextEncoder, open_model
from studentpack.ground.errors import GpuUnavailableError, UserError
from tests.tiny import SENTENCES


def _write_variant(src: Path, out: Path) -> Path:
    """A bare fp32 variant directory (model.onnx, tokenizer, export.json) without the export pipeline."""
    from studentpack.export import onnx as export_onnx
    from studentpack.model import adapter
    from studentpack.text.sources import read_model_config

    out.mkdir(parents=True)
    tokenizer = adapter.load_tokenizer(src)
    info = export_onnx.describe(read_model_config(src), tokenizer)
    module = export_onnx.load_graph_module(src, info)
    export_onnx.export_fp32(module, info, out / "model.onnx")
    tokenizer.save_pretrained(str(out))
    (out / "export.json").write_text(json.dumps({"variant": "fp32", **info.as_dict()}))
    return out


@pytest.fixture(scope="module")
def variant_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_variant(tiny_bert_dir, tmp_path_factory.mktemp("rt") / "fp32")


def test_session_feeds_and_outputs(variant_dir: Path) -> None:
    from studentpack.engines.ort import OrtSession

    session = OrtSession.open(variant_dir, threads=1, max_length=16)
    assert session.providers == ["CPUExecutionProvider"]
    assert session.output_names == ["token_embeddings", "sentence_embedding"]
    feeds = session.tokenize(SENTENCES[:3])
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.dtype == np.int64 and v.shape == feeds["input_ids"].shape for v in feeds.values())
    out = session.run(feeds)
    batch, length = feeds["input_ids"].shape
    assert out["token_embeddings"].shape == (batch, length, 32)
    assert out["sentence_embedding"].shape == (batch, 32)
    only = session.run_texts(SENTENCES[:2], ["sentence_embedding"])
    assert list(only) == ["sentence_embedding"]
    with pytest.raises(UserError, match="no output"):
        session.run(feeds, ["pooled"])


def test_truncation_is_counted(variant_dir: Path) -> None:
    from studentpack.engines.ort import OrtSession

    session = OrtSession.open(variant_dir, threads=1, max_length=8, warmup=False)
    feeds = session.tokenize(["the film was very good and the story was great and new", "a bad movie"])
    assert feeds["input_ids"].shape[1] == 8
    assert session.truncated == 1


def test_onnx_encoder_matches_torch(variant_dir: Path, tiny_bert_dir: Path) -> None:
    onnx_model = open_model(str(variant_dir))
    torch_model = open_model(str(tiny_bert_dir))
    assert isinstance(onnx_model, TextEncoder)
    a = onnx_model.encode(SENTENCES, batch_size=5)
    b = torch_model.encode(SENTENCES, batch_size=5)
    assert a.shape == b.shape == (len(SENTENCES), 32)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(UserError, match="embedding model"):
        onnx_model.predict(SENTENCES[:1])


def test_cuda_requested_without_cuda_provider_raises() -> None:
    from studentpack.engines.ort import check_providers

    with pytest.raises(GpuUnavailableError, match="CUDAExecutionProvider"):
        check_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(GpuUnavailableError):
        check_providers("cuda:1", ["AzureExecutionProvider", "CPUExecutionProvider"])
    check_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    check_providers("cpu", ["CPUExecutionProvider"])
    with pytest.raises(UserError, match="unknown device"):
        check_providers("gpu", ["CPUExecutionProvider"])


def test_session_that_silently_fell_back_to_cpu_raises(variant_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu without working CUDA libraries comes up on CPU: we must refuse, loudly."""
    import onnxruntime as ort

    from studentpack.engines.ort import OrtSession

    available = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    with (
        pytest.warns(UserWarning, match="not in available provider"),
        pytest.raises(GpuUnavailableError, match="the session for"),
    ):
        OrtSession.open(variant_dir, device="cuda")


def test_cuda_on_this_machine_is_refused(variant_dir: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(GpuUnavailableError):
        open_model(str(variant_dir), device="cuda")


def test_bare_model_without_export_json(variant_dir: Path, tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(variant_dir, bare)
    (bare / "export.json").unlink()
    model = open_model(str(bare))
    assert model.encode(SENTENCES[:2]).shape == (2, 32)
    assert model.labels == []


def test_not_a_variant_dir(tmp_path: Path) -> None:
    from studentpack.engines.ort import OrtSession

    with pytest.raises(UserError, match="not an exported variant"):
        OrtSession.open(tmp_path)


def test_classifier_sentence_pairs_match_torch(tmp_path: Path) -> None:
    """Cross-encoders (a 1-output STS-B regressor) score sentence pairs through `predict(text_pairs=...)`."""
    from tests.tiny import save_classifier_dir

    src = save_classifier_dir(tmp_path / "cross", labels=("score",))
    variant = _write_variant(src, tmp_path / "fp32")
    onnx_model, torch_model = open_model(str(variant)), open_model(str(src))
    assert onnx_model.labels == torch_model.labels and len(onnx_model.labels) == 1
    firsts, seconds = SENTENCES[:6], SENTENCES[6:]
    got = onnx_model.predict(firsts, batch_size=4, text_pairs=seconds)
    want = torch_model.predict(firsts, batch_size=4, text_pairs=seconds)
    assert got.shape == (6, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the pair changes the answer (token_type_ids reach the graph), so the test can fail
    assert not np.allclose(got, onnx_model.predict(firsts, batch_size=4))
    with pytest.raises(ValueError, match="text pairs"):
        onnx_model.predict(firsts, text_pairs=seconds[:2])


def test_released_memory_changes_no_output(variant_dir: Path) -> None:
    """Runs above the release threshold hand the arena back; the numbers must be the same either way."""
    from studentpack.engines.graph import open_session
    from studentpack.engines.ort import RELEASE_ABOVE_TOKENS

    texts = [" ".join(SENTENCES)] * 16  # (16, T): far past the threshold
    keeping = open_session(variant_dir, threads=1)
    releasing = open_session(variant_dir, threads=1, release_memory=True)
    feeds = keeping.tokenize(texts)
    assert feeds["input_ids"].size > RELEASE_ABOVE_TOKENS
    for _ in range(2):  # the second run reallocates what the first handed back
        np.testing.assert_array_equal(
            releasing.run(feeds)["sentence_embedding"], keeping.run(feeds)["sentence_embedding"]
        )
