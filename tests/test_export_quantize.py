"""Presets, node selection, INT8 counting and the fp16 conversion logic (validated on GPU only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studentpack.export import presets
from studentpack.ground import isa
from studentpack.ground.errors import UserError


def test_isa_detection_from_cpu_flags() -> None:
    assert isa.detect_isa(["avx2", "avx512f", "avx512_vnni"], "x86_64") == "avx512_vnni"
    assert isa.detect_isa(["avx2", "avx_vnni"], "x86_64") == "avx512_vnni"
    assert isa.detect_isa(["avx2", "fma"], "x86_64") == "avx2"
    assert isa.detect_isa(["asimd", "asimddp"], "aarch64") == "arm64"
    assert isa.resolve_isa("avx2", []).reduce_range is True
    assert isa.resolve_isa("avx512_vnni", []).reduce_range is False
    with pytest.raises(UserError, match="unknown ISA"):
        isa.resolve_isa("sse2", [])
    assert isa.relevant_flags(["avx2", "sse4_1", "avx512_vnni"]) == ["avx2", "avx512_vnni"]


def test_variant_parsing() -> None:
    assert presets.parse_variants(None, "cpu") == (
        "fp32",
        "fused",
        "int8-dynamic",
        *presets.default_openvino_variants(),
    )
    assert presets.default_openvino_variants(["avx512_bf16"]) in (("openvino", "openvino-bf16", "openvino-int8"), ())
    assert "openvino-bf16" not in presets.default_openvino_variants(["avx2", "avx512_vnni"])  # no bf16 CPU
    assert presets.parse_variants(None, "cuda:0") == ("fp32", "fused", "fp16")
    assert presets.parse_variants("int8-dynamic, fp32", "cpu") == ("fp32", "int8-dynamic")
    with pytest.raises(UserError, match="unknown variant"):
        presets.parse_variants("fp32,fp8", "cpu")


@pytest.fixture(scope="module")
def fp32_graph(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from studentpack.export import onnx as export_onnx
    from studentpack.model import adapter
    from studentpack.text.sources import read_model_config

    info = export_onnx.describe(read_model_config(tiny_bert_dir), adapter.load_tokenizer(tiny_bert_dir))
    path = tmp_path_factory.mktemp("q") / "fp32.onnx"
    export_onnx.export_fp32(export_onnx.load_graph_module(tiny_bert_dir, info), info, path)
    return path, info


def test_fp32_graph_facts(fp32_graph: tuple[Path, Any]) -> None:
    import onnx

    path, info = fp32_graph
    model = onnx.load(str(path))
    assert model.ir_version <= 13 and [o.version for o in model.opset_import if o.domain == ""] == [17]
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in model.graph.output] == ["token_embeddings", "sentence_embedding"]
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert dims == [["batch", "sequence"]] * 3
    onnx.checker.check_model(model)
    assert info.max_length == 64 and info.num_heads == 4


def test_post_activation_matmuls_are_the_ffn_outputs(fp32_graph: tuple[Path, Any]) -> None:
    import onnx

    from studentpack.export.quantize import post_activation_matmuls, resolve_nodes

    model = onnx.load(str(fp32_graph[0]))
    found = post_activation_matmuls(model)
    assert found == [f"/encoder/encoder/layer.{i}/output/dense/MatMul" for i in range(4)]
    assert resolve_nodes(model, ["*layer.2/output/dense/MatMul", found[2]]) == [found[2]]
    with pytest.raises(UserError, match="matches no node"):
        resolve_nodes(model, ["*layer.9*"])


def test_per_tensor_option(fp32_graph: tuple[Path, Any], tmp_path: Path) -> None:
    import onnx

    from studentpack.export.optimize import fuse
    from studentpack.export.quantize import quantize_int8_dynamic

    path, info = fp32_graph
    fuse(path, tmp_path / "fused.onnx", info)
    per_tensor = quantize_int8_dynamic(tmp_path / "fused.onnx", tmp_path / "pt.onnx", isa.PRESETS["avx2"], False)
    per_channel = quantize_int8_dynamic(tmp_path / "fused.onnx", tmp_path / "pc.onnx", isa.PRESETS["avx2"], True)
    assert per_tensor["per_channel"] is False and per_channel["per_channel"] is True
    assert per_tensor["quantized_matmuls"] == per_channel["quantized_matmuls"] == 16

    def scales(file: Path) -> int:  # per-channel stores one scale per output column
        graph = onnx.load(str(file))
        return max(int(onnx.numpy_helper.to_array(i).size) for i in graph.graph.initializer if "scale" in i.name)

    assert scales(tmp_path / "pt.onnx") == 1 and scales(tmp_path / "pc.onnx") > 1


def test_fp16_conversion_logic(fp32_graph: tuple[Path, Any], tmp_path: Path) -> None:
    """The fp16 graph cannot be validated on a CPU-only machine; its structure can."""
    import onnx

    from studentpack.export.optimize import fused_operator_counts
    from studentpack.export.quantize import convert_fp16, initializer_types

    path, info = fp32_graph
    settings = convert_fp16(path, tmp_path / "fp16.onnx", info)
    model = onnx.load(str(tmp_path / "fp16.onnx"))
    onnx.checker.check_model(model)
    types = initializer_types(model)
    assert types.get("FLOAT16", 0) >= 4 * 4  # the layer weights are fp16
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.INT64] * 3
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [onnx.TensorProto.FLOAT] * 2
    assert fused_operator_counts(model)["Attention"] == 4
    assert {n.op_type for n in model.graph.node} & set(settings["kept_fp32_ops"])  # the pooling tail is there
    # Numerics belong to the CUDA gate; where this CPU build happens to run the graph, it must agree.
    import numpy as np
    import onnxruntime as ort

    from studentpack.export.validate import Case, parity_feeds
    from studentpack.tasks.metrics import row_cosines

    try:
        half = ort.InferenceSession(str(tmp_path / "fp16.onnx"), providers=["CPUExecutionProvider"])
    except Exception as exc:  # pragma: no cover - depends on the CPU build's fp16 kernels
        pytest.skip(f"this onnxruntime cannot run the fp16 graph on CPU: {exc}")
    full = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = parity_feeds(info, Case(4, 20))
    a = full.run(["sentence_embedding"], feeds)[0]
    b = half.run(["sentence_embedding"], feeds)[0]
    assert b.dtype == np.float32 and row_cosines(a, b).min() > 0.999


def test_classifier_export(tmp_path: Path) -> None:
    """A BertForSequenceClassification directory exports logits; labels travel in export.json."""
    import numpy as np

    from studentpack.engines import open_model
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from tests.tiny import SENTENCES, save_classifier_dir

    src = save_classifier_dir(tmp_path / "clf", seed=0)
    out = tmp_path / "onnx"
    options = ExportOptions(
        model=str(src), out=str(out), variants=("fused", "int8-dynamic"), sample_texts=32, threads=1
    )
    results = export_variants(options, log=lambda _l: None)
    assert [r.accepted for r in results] == [True, True], [r.reason for r in results]
    record = json.loads((out / "int8-dynamic" / "export.json").read_text())
    assert record["kind"] == "classifier" and record["outputs"] == ["logits"]
    assert record["labels"] == ["negative", "positive"]
    assert record["accuracy"]["label_agreement"] >= 0.99 and "mean_cosine" not in record["accuracy"]
    onnx_model, torch_model = open_model(str(out / "fused")), open_model(str(src))
    assert onnx_model.labels == torch_model.labels == ["negative", "positive"]
    np.testing.assert_allclose(onnx_model.predict(SENTENCES), torch_model.predict(SENTENCES), atol=1e-4)
    with pytest.raises(UserError, match="classifier"):
        onnx_model.encode(SENTENCES)


def test_eval_task_stsb_gate(tiny_bert_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("studentpack.tasks.stsb")
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from tests.tiny import SENTENCES

    data = tmp_path / "dev.tsv"
    pairs = zip(SENTENCES, SENTENCES[1:] + SENTENCES[:1], strict=True)
    rows = [f"{a}\t{b}\t{(i % 6) * 0.8:.1f}" for i, (a, b) in enumerate(pairs)]
    data.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    options = ExportOptions(
        model=str(tiny_bert_dir),
        out=str(tmp_path / "o"),
        variants=("int8-dynamic",),
        sample_texts=8,
        eval_task="stsb",
        eval_data=str(data),
        gates=presets_gates(),
        threads=1,
    )
    (result,) = export_variants(options, log=lambda _l: None)
    task = result.record["accuracy"]["task"]
    assert task["name"] == "stsb" and abs(task["delta"]) <= 100 and task["max_delta"] == 100.0


def presets_gates() -> Any:
    from studentpack.export.validate import Gates

    return Gates(max_metric_delta=100.0)  # random tiny model: only the plumbing is under test
