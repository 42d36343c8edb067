"""OpenVINO variants on a tiny real BERT: the export gates, the IR really in 8 bits, parity with PyTorch,
eval and serve through them, and clear errors for a bad or missing OpenVINO file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from studentpack.engines import open_model
from studentpack.ground.errors import GpuUnavailableError, UserError
from tests.tiny import SENTENCES

pytest.importorskip("openvino")
pytest.importorskip("nncf")

LAYERS = 4  # tests/tiny.py's default
VARIANTS = ("fp32", "openvino", "openvino-bf16", "openvino-int8")


@pytest.fixture(scope="module")
def exported(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    out = tmp_path_factory.mktemp("ov") / "onnx"
    options = ExportOptions(
        model=str(tiny_bert_dir), out=str(out), variants=VARIANTS, sample_texts=48, calibration_texts=24, threads=1
    )
    return out, export_variants(options, log=lambda _line: None)


def test_variants_accepted_with_their_files_and_figures(exported: tuple[Path, list[Any]]) -> None:
    out, results = exported
    assert [r.variant for r in results] == list(VARIANTS)
    assert all(r.accepted for r in results), [r.reason for r in results]
    for variant in ("openvino", "openvino-bf16", "openvino-int8"):
        files = {p.name for p in (out / variant).iterdir()}
        assert {"model.xml", "model.bin", "export.json", "tokenizer.json", "config.json"} <= files
        assert "model.onnx" not in files
        record = json.loads((out / variant / "export.json").read_text())
        precision = "bf16" if variant == "openvino-bf16" else "f32"
        assert record["status"] == "accepted" and record["openvino"]["inference_precision"] == precision
        size = (out / variant / "model.xml").stat().st_size + (out / variant / "model.bin").stat().st_size
        assert record["file_bytes"] == size and len(record["weights_sha256"]) == 64
        assert record["opset"] is None  # not an ONNX graph
    parity = json.loads((out / "openvino" / "export.json").read_text())["parity"]
    assert parity["max_abs"] <= 1e-4
    int8 = json.loads((out / "openvino-int8" / "export.json").read_text())
    assert int8["accuracy"]["mean_cosine"] >= 0.99 and int8["calibration"]["texts"] == 24
    assert int8["quantization"]["calibration_texts"] == 24


def test_openvino_int8_stores_every_weight_matmul_in_8_bits(exported: tuple[Path, list[Any]]) -> None:
    import openvino as ov

    out = exported[0]
    int8_model = ov.Core().read_model(str(out / "openvino-int8" / "model.xml"))
    int8_weights = [
        o for o in int8_model.get_ops() if o.get_type_name() == "Constant" and o.get_element_type() == ov.Type.i8
    ]
    assert len(int8_weights) >= 6 * LAYERS  # Q, K, V, attention output, FFN in, FFN out per layer
    full = ov.Core().read_model(str(out / "openvino" / "model.xml"))
    assert not [o for o in full.get_ops() if o.get_type_name() == "Constant" and o.get_element_type() == ov.Type.i8]
    assert (out / "openvino-int8" / "model.bin").stat().st_size < 0.6 * (out / "openvino" / "model.bin").stat().st_size


def test_each_variant_runs_in_the_precision_it_was_gated_in(exported: tuple[Path, list[Any]]) -> None:
    import openvino as ov

    from studentpack.engines.openvino import OvSession
    from studentpack.ground.isa import BF16_FLAGS
    from studentpack.ground.provenance import cpu_flags

    native_bf16 = any(flag in cpu_flags() for flag in BF16_FLAGS)
    for variant, expected in (
        ("openvino", ov.Type.f32),
        ("openvino-int8", ov.Type.f32),
        ("openvino-bf16", ov.Type.bf16),
    ):
        session = OvSession.open(exported[0] / variant, threads=1, warmup=False)
        if variant == "openvino-bf16" and not native_bf16:
            continue  # the plugin computes fp32 where the CPU has no bf16
        assert session.compiled.get_property("INFERENCE_PRECISION_HINT") == expected, variant
    for variant, precision in (("openvino", "f32"), ("openvino-bf16", "bf16"), ("openvino-int8", "f32")):
        record = json.loads((exported[0] / variant / "export.json").read_text())
        gate = record["parity" if variant == "openvino" else "accuracy"]
        assert (gate["runtime"], gate["inference_precision"]) == ("OvSession", precision), variant  # gated as run


def test_parity_with_pytorch_on_padded_mixed_length_batches(exported: tuple[Path, list[Any]], tiny_bert_dir: Path):
    import torch

    from studentpack.engines.openvino import OvSession
    from studentpack.model import adapter

    model = adapter.load_encoder(tiny_bert_dir).eval()
    session = OvSession.open(exported[0] / "openvino", threads=1)
    rng = np.random.default_rng(7)
    for batch, length in [(1, 1), (3, 10), (7, 33), (2, 64)]:
        lengths = rng.integers(1, length + 1, size=batch)
        lengths[-1] = length
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
        ids = rng.integers(5, 140, size=(batch, length)) * mask
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = session.run(feeds)
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
        real = mask.astype(bool)
        assert np.abs(out["token_embeddings"][real] - ref[real]).max() <= 1e-4
        pooled = (ref * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        assert np.abs(out["sentence_embedding"] - pooled).max() <= 1e-4


def test_outputs_are_copies_not_the_requests_buffers(exported: tuple[Path, list[Any]]) -> None:
    from studentpack.engines.openvino import OvSession

    session = OvSession.open(exported[0] / "openvino", threads=1)
    first = session.run_texts(SENTENCES[:2], ["sentence_embedding"])["sentence_embedding"]
    kept = first.copy()
    session.run_texts(SENTENCES[5:7], ["sentence_embedding"])  # the same shapes: the request reuses its buffers
    np.testing.assert_array_equal(first, kept)


def test_encode_protocol_matches_pytorch(exported: tuple[Path, list[Any]], tiny_bert_dir: Path) -> None:
    reference = open_model(str(tiny_bert_dir)).encode(SENTENCES)
    for variant, floor in (("openvino", 0.99999), ("openvino-int8", 0.99)):
        encoder = open_model(str(exported[0] / variant))
        vectors = encoder.encode(SENTENCES, batch_size=4)
        assert (vectors * reference).sum(axis=1).min() > floor, variant
        assert variant in encoder.description


def test_classifier_logits_through_openvino(tmp_path: Path) -> None:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from tests.tiny import save_classifier_dir

    src = save_classifier_dir(tmp_path / "clf", seed=0)
    options = ExportOptions(model=str(src), out=str(tmp_path / "o"), variants=("openvino",), threads=1)
    (result,) = export_variants(options, log=lambda _line: None)
    assert result.accepted, result.reason
    ov_model, torch_model = open_model(str(tmp_path / "o" / "openvino")), open_model(str(src))
    assert ov_model.labels == torch_model.labels == ["negative", "positive"]
    np.testing.assert_allclose(ov_model.predict(SENTENCES), torch_model.predict(SENTENCES), atol=1e-4)


def test_eval_scores_an_openvino_variant_like_its_onnx_twin(
    capsys: pytest.CaptureFixture[str], exported: tuple[Path, list[Any]], tmp_path: Path
) -> None:
    from tests.test_eval_support import run_json, sentence_pairs, stsb_tsv

    pairs = sentence_pairs(24)
    data = stsb_tsv(tmp_path / "dev.tsv", [(a, b, float(i % 5)) for i, (a, b) in enumerate(pairs)])
    scores = {}
    for variant in ("fp32", "openvino"):
        result = run_json(capsys, str(exported[0] / variant), "--task", "stsb", "--data", str(data), "--no-save")
        scores[variant] = result["value"]
    assert scores["openvino"] == pytest.approx(scores["fp32"], abs=1e-6)


def test_serve_an_openvino_variant(exported: tuple[Path, list[Any]]) -> None:
    from tests.test_serve_e2e import cli, start

    variant = exported[0] / "openvino-int8"
    server = start(cli(f"m={variant}", "--port", "0", "--threads", "1", "--max-batch", "4", "--log-level", "warning"))
    try:
        meta = httpx.get(f"{server.url}/v2/models/m", timeout=30).json()
        assert meta["platform"] == "openvino"
        response = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m", "input": SENTENCES}, timeout=60)
        assert response.status_code == 200, response.text
        served = np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)
    finally:
        assert server.stop() == 0, "".join(server.log)
    local = open_model(str(variant)).encode(SENTENCES)
    assert np.abs(served - local).max() < 1e-4  # same engine, batched differently


# ---------------------------------------------------------------------------------------------- errors


def _copy(exported: tuple[Path, list[Any]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported[0] / "openvino", tmp_path / "v"))


def test_missing_weights_file_is_a_clear_error(exported: tuple[Path, list[Any]], tmp_path: Path) -> None:
    variant = _copy(exported, tmp_path)
    (variant / "model.bin").unlink()
    with pytest.raises(UserError, match=r"no weights file model\.bin"):
        open_model(str(variant))


def test_corrupt_model_xml_is_a_clear_error(exported: tuple[Path, list[Any]], tmp_path: Path) -> None:
    variant = _copy(exported, tmp_path)
    (variant / "model.xml").write_text("<net name='x'><layers><layer", encoding="utf-8")
    with pytest.raises(UserError, match="OpenVINO cannot load") as caught:
        open_model(str(variant))
    assert "\n" not in str(caught.value)


def test_truncated_weights_are_a_clear_error(exported: tuple[Path, list[Any]], tmp_path: Path) -> None:
    variant = _copy(exported, tmp_path)
    weights = variant / "model.bin"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(UserError, match="OpenVINO cannot load"):
        open_model(str(variant))


def test_cuda_is_refused_not_run_on_the_cpu(exported: tuple[Path, list[Any]], tiny_bert_dir: Path, tmp_path: Path):
    from studentpack.export.options import ExportOptions, plan

    with pytest.raises(GpuUnavailableError, match="OpenVINO has no CUDA device"):
        open_model(str(exported[0] / "openvino"), device="cuda")
    with pytest.raises(UserError, match="runs on the CPU only"):
        plan(ExportOptions(model=str(tiny_bert_dir), out=str(tmp_path / "o"), variants=("openvino",), device="cuda"))


def test_export_without_nncf_says_what_to_install(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from studentpack.export.options import ExportOptions, plan

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    options = ExportOptions(model=str(tiny_bert_dir), out=str(tmp_path / "o"), variants=("openvino-int8",))
    with pytest.raises(UserError, match=r"needs nncf.*studentpack\[openvino\]"):
        plan(options)
    plan(ExportOptions(model=str(tiny_bert_dir), out=str(tmp_path / "o"), variants=("openvino",)))  # nncf not needed


def test_eval_cli_on_a_broken_variant_is_one_line_and_exit_1(exported: tuple[Path, list[Any]], tmp_path: Path):
    variant = _copy(exported, tmp_path)
    (variant / "model.bin").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "studentpack", "eval", str(variant), "--task", "agreement", "--teacher", str(variant)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "OpenVINO cannot load" in result.stderr, result.stderr
