"""Tiny random BERT exported to every CPU variant: layout, export.json, fused graph, INT8 MatMuls, parity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studentpack.engines import open_model
from tests.tiny import SENTENCES

LAYERS = 4  # tests/tiny.py's default
CPU_VARIANTS = ("fp32", "fused", "int8-dynamic", "int8-static")


@pytest.fixture(scope="module")
def exported(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    out = tmp_path_factory.mktemp("export") / "onnx"
    options = ExportOptions(
        model=str(tiny_bert_dir),
        out=str(out),
        variants=CPU_VARIANTS,
        sample_texts=48,
        calibration_texts=24,
        threads=1,
    )
    return out, export_variants(options, log=lambda _line: None)


def _graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path / "model.onnx"))


def _ops(path: Path) -> dict[str, int]:
    from studentpack.export.optimize import op_counts

    return op_counts(_graph(path))


def test_every_variant_written_and_accepted(exported: tuple[Path, list[Any]]) -> None:
    out, results = exported
    assert [r.variant for r in results] == list(CPU_VARIANTS)
    assert all(r.accepted for r in results), [r.reason for r in results]
    assert sorted(p.name for p in out.iterdir()) == sorted(CPU_VARIANTS)  # no rejected/, no .work, no temp
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    for variant in CPU_VARIANTS:
        files = {p.name for p in (out / variant).iterdir()}
        assert {"model.onnx", "export.json", "config.json", "tokenizer.json", "tokenizer_config.json"} <= files


# key -> type (or tuple of types) every export.json has; None allowed where the variant has no value
_SCHEMA: dict[str, Any] = {
    "schema": str,
    "variant": str,
    "status": str,
    "kind": str,
    "inputs": list,
    "outputs": list,
    "hidden_size": int,
    "num_heads": int,
    "num_layers": int,
    "max_length": int,
    "labels": list,
    "source": dict,
    "exporter": str,
    "opset": int,
    "ir_version": int,
    "target_device": str,
    "gates": dict,
    "file_bytes": int,
    "model_sha256": str,
    "versions": dict,
    "machine": dict,
    "seconds": float,
    "created": str,
}


def test_export_json_schema(exported: tuple[Path, list[Any]]) -> None:
    out, _ = exported
    for variant in CPU_VARIANTS:
        record = json.loads((out / variant / "export.json").read_text())
        for key, kind in _SCHEMA.items():
            assert isinstance(record.get(key), kind), (variant, key, record.get(key))
        assert record["schema"] == "studentpack.export/1"
        assert record["variant"] == variant and record["status"] == "accepted" and record["reason"] is None
        assert record["opset"] == 17 and record["ir_version"] <= 13
        assert record["file_bytes"] == (out / variant / "model.onnx").stat().st_size
        assert set(record["source"]) >= {"path", "sha256"} and len(record["source"]["sha256"]) == 64
        assert {"onnx", "onnxruntime", "torch"} <= set(record["versions"])
        if variant in ("fp32", "fused"):
            parity = record["parity"]
            assert parity["passed"] and parity["max_abs"] <= 1e-4
            lengths = {case["length"] for case in parity["cases"]}
            assert {1, record["max_length"]} <= lengths
            assert len({case["batch"] for case in parity["cases"]}) >= 3
        else:
            accuracy = record["accuracy"]
            sample = record["corpora"]["sample"]
            # the sample, inputs cut at the maximum length, and another genre's texts
            assert sample["texts"] == 48 and sample["long_texts"] >= 1 and sample["other_genre_texts"] == 32
            assert accuracy["passed"] and accuracy["texts"] == 48 + sample["long_texts"] + 32
            assert accuracy["mixed_batch_worst_cosine"] >= 0.95
            assert 0.99 <= accuracy["mean_cosine"] <= 1.0 and accuracy["worst_cosine"] >= 0.95
            assert record["isa"]["preset"] in ("avx512_vnni", "avx2", "arm64")
            assert record["isa"]["requested"] == "auto"
            assert isinstance(record["isa"]["cpu_flags"], list)
            assert record["quantization"]["per_channel"] is True


def test_fused_graph_has_attention_in_every_layer(exported: tuple[Path, list[Any]]) -> None:
    out, _ = exported
    ops = _ops(out / "fused")
    assert ops.get("Attention") == LAYERS
    assert ops.get("SkipLayerNormalization") == 2 * LAYERS
    assert ops.get("BiasGelu") == LAYERS
    assert ops.get("EmbedLayerNormalization") == 1
    assert "Softmax" not in ops and "Erf" not in ops  # nothing left unfused
    record = json.loads((out / "fused" / "export.json").read_text())
    assert record["fused_ops"]["Attention"] == LAYERS and record["fusion_complete"] is True


def _float_weight_matmuls(graph: Any) -> list[str]:
    weights = {init.name for init in graph.graph.initializer}
    return [n.name for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def test_int8_dynamic_quantizes_every_weight_matmul(exported: tuple[Path, list[Any]]) -> None:
    out, _ = exported
    ops = _ops(out / "int8-dynamic")  # quantized from the plain fp32 graph (the default source)
    assert ops.get("MatMulInteger") == 6 * LAYERS  # q, k, v, attention output, FFN in, FFN out
    assert not _float_weight_matmuls(_graph(out / "int8-dynamic"))
    record = json.loads((out / "int8-dynamic" / "export.json").read_text())
    assert record["quantization"]["quantized_matmuls"] == 6 * LAYERS
    assert record["quantization"]["source_graph"] == "fp32"
    import onnx

    initializers = _graph(out / "int8-dynamic").graph.initializer
    int8_weights = [t for t in initializers if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    assert len(int8_weights) == 6 * LAYERS  # every weight matrix is stored as int8


def test_int8_static_is_qdq_with_ffn_output_kept_fp32(exported: tuple[Path, list[Any]]) -> None:
    out, _ = exported
    ops = _ops(out / "int8-static")
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0
    record = json.loads((out / "int8-static" / "export.json").read_text())
    settings = record["quantization"]
    assert settings["format"].startswith("QDQ") and settings["calibration_method"] == "MinMax"
    assert len(settings["kept_fp32_post_activation"]) == LAYERS
    assert settings["quantized_matmuls"] == 5 * LAYERS  # q, k, v, attention output, FFN in
    assert sorted(_float_weight_matmuls(_graph(out / "int8-static"))) == sorted(settings["kept_fp32_post_activation"])
    assert record["calibration"]["texts"] == 24


def test_int8_dynamic_from_the_fused_graph(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    out = tmp_path / "o"
    opts = ExportOptions(model=str(tiny_bert_dir), out=str(out), variants=("int8-dynamic",), int8_source="fused",
                         sample_texts=16, threads=1)  # fmt: skip
    [result] = export_variants(opts, log=lambda _: None)
    assert result.accepted
    ops = _ops(out / "int8-dynamic")
    assert ops.get("QAttention") == LAYERS  # Q, K, V projections, one fused GEMM per layer
    assert ops.get("MatMulInteger") == 3 * LAYERS  # attention output, FFN in, FFN out
    quantization = json.loads((out / "int8-dynamic" / "export.json").read_text())["quantization"]
    assert quantization["quantized_matmuls"] == 4 * LAYERS and quantization["source_graph"] == "fused"


@pytest.mark.parametrize("variant", ["fp32", "fused"])
def test_parity_on_padded_mixed_length_batches(exported: tuple[Path, list[Any]], tiny_bert_dir: Path, variant: str):
    """Independent of the gate: the default-attention (sdpa) torch model against the graph."""
    import onnxruntime as ort
    import torch

    from studentpack.model import adapter

    model = adapter.load_encoder(tiny_bert_dir).eval()
    session = ort.InferenceSession(str(exported[0] / variant / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for batch, length in [(1, 1), (3, 1), (3, 10), (7, 33), (2, 64)]:
        lengths = rng.integers(1, length + 1, size=batch)
        lengths[-1] = length
        mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
        ids = rng.integers(5, 140, size=(batch, length)) * mask
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        states, sentence = session.run(["token_embeddings", "sentence_embedding"], feeds)
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
        assert states.shape == ref.shape
        real = mask.astype(bool)
        assert np.abs(states[real] - ref[real]).max() <= 1e-4
        pooled = (ref * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        assert np.abs(sentence - pooled).max() <= 1e-4


def test_variant_dirs_score_through_the_encode_protocol(exported: tuple[Path, list[Any]], tiny_bert_dir: Path):
    torch_vectors = open_model(str(tiny_bert_dir)).encode(SENTENCES)
    for variant in CPU_VARIANTS:
        encoder = open_model(str(exported[0] / variant))
        vectors = encoder.encode(SENTENCES, batch_size=4)
        cos = (vectors * torch_vectors).sum(axis=1)
        assert cos.min() > (0.99999 if variant in ("fp32", "fused") else 0.99), variant
        assert variant in encoder.description


def test_only_int8_requested_still_builds_but_does_not_write_fp32(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    out = tmp_path / "o"
    options = ExportOptions(
        model=str(tiny_bert_dir), out=str(out), variants=("int8-dynamic",), isa="avx2", sample_texts=16, threads=1
    )
    (result,) = export_variants(options, log=lambda _line: None)
    assert result.accepted and [p.name for p in out.iterdir()] == ["int8-dynamic"]
    record = json.loads((out / "int8-dynamic" / "export.json").read_text())
    assert record["isa"]["preset"] == "avx2" and record["quantization"]["reduce_range"] is True
