"""INT8 (dynamic and static QDQ) and fp16 variants from the fp32 / fused graphs.

- int8-dynamic: `quantize_dynamic` on the *fused* graph, so Attention becomes QAttention and the
  three other weight GEMMs per layer become MatMulInteger; weights int8 per output channel,
  activations uint8 quantized at run time. Fused-then-quantized is the fast path on CPU.
- int8-static: QDQ (QuantizeLinear/DequantizeLinear pairs around the weight MatMuls) on the fp32
  graph, activation ranges calibrated on corpus text (MinMax, Entropy or Percentile). The MatMuls
  fed by GELU (the FFN output projections) stay fp32 by default: their inputs carry outliers that
  one static activation scale cannot cover (on all-MiniLM-L6-v2: mean cosine 0.916 with them
  quantized, 0.990 without). QDQ is the portable INT8 format (TensorRT, OpenVINO, NPUs).
- fp16: CUDA-target fusion, then fp16 weights and compute with fp32 graph inputs/outputs; the
  pooling and normalisation at the end stay fp32.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studentpack.export.onnx import GraphFacts, save_model
from studentpack.export.optimize import fused_model, quiet_fuser
from studentpack.export.presets import CALIBRATION_METHODS
from studentpack.ground.errors import UserError
from studentpack.ground.isa import IsaPreset

# operators that compute a MatMul in integer arithmetic, as written by the quantizer or by ORT
INTEGER_MATMUL_OPS = (
    "MatMulInteger",
    "QAttention",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QLinearMatMul",
    "QGemm",
)
_ACTIVATION_OPS = ("Erf", "Gelu", "BiasGelu", "FastGelu", "Tanh")
_WALK_STOPS = ("MatMul", "LayerNormalization", "SkipLayerNormalization", "Softmax")
# pooling / normalisation tail kept fp32 in the fp16 variant (sums over many tokens)
_FP16_KEEP_OPS = ("ReduceSum", "ReduceL2", "ReduceMean", "Div", "Clip", "Expand", "Sqrt")


class _DropPreprocessAdvice(logging.Filter):
    """quantize_* log a root-level warning to run their pre-processing, which does not apply here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    advice = _DropPreprocessAdvice()
    root.addFilter(advice)
    try:
        with quiet_fuser():
            yield
    finally:
        root.removeFilter(advice)


def resolve_nodes(model: onnx.ModelProto, patterns: Sequence[str]) -> list[str]:
    """Node names matching exact names or shell patterns (`*/layer.5/*`); a pattern matching none is an error."""
    names = [node.name for node in model.graph.node]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise UserError(f"--keep-fp32 {pattern!r} matches no node of the graph (e.g. {names[len(names) // 2]!r})")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def post_activation_matmuls(model: onnx.ModelProto, depth: int = 6) -> list[str]:
    """Weight MatMuls fed by a GELU/tanh (the FFN output projections), found by walking producers back.

    The walk stops at MatMul, LayerNormalization and Softmax, so it never crosses into another
    sub-layer; an exported erf-GELU is 4-5 elementwise nodes deep (Div, Erf, Add, Mul, Mul).
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    weights = {init.name for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            continue
        frontier = [node.input[0]]
        for _ in range(depth):
            parents = [producers[name] for name in frontier if name in producers]
            if any(p.op_type in _ACTIVATION_OPS for p in parents):
                found.append(node.name)
                break
            parents = [p for p in parents if p.op_type not in _WALK_STOPS]
            frontier = [i for p in parents for i in p.input if i and i not in weights]
    return found


def integer_matmul_count(model: onnx.ModelProto) -> int:
    """MatMuls computed in INT8: integer operators, plus QDQ MatMuls whose weight is dequantized int8."""
    producers = {out: node for node in model.graph.node for out in node.output}
    count = 0
    for node in model.graph.node:
        if node.op_type in INTEGER_MATMUL_OPS:
            count += 1
        elif node.op_type == "MatMul" and len(node.input) > 1:
            parent = producers.get(node.input[1])
            count += parent is not None and parent.op_type == "DequantizeLinear"
    return count


def quantize_int8_dynamic(
    fused: Path, dst: Path, preset: IsaPreset, per_channel: bool = True, keep_fp32: Sequence[str] = ()
) -> dict[str, Any]:
    """Fused fp32 graph -> dynamic INT8 graph at `dst`; returns the settings and counts for export.json."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(fused))
    excluded = resolve_nodes(model, keep_fp32)
    with quiet_quantizer():
        quantize_dynamic(
            str(fused),
            str(dst),
            per_channel=per_channel,
            reduce_range=preset.reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            # shape inference cannot type the outputs of fused contrib ops; they are float32
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )
    quantized = onnx.load(str(dst))
    save_model(quantized, dst)
    return {
        "format": "QOperator (dynamic)",
        "weight_type": "int8",
        "activation_type": "uint8 (dynamic)",
        "per_channel": per_channel,
        "reduce_range": preset.reduce_range,
        "kept_fp32": excluded,
        "quantized_matmuls": integer_matmul_count(quantized),
    }


class FeedsReader:
    """onnxruntime's CalibrationDataReader protocol over prepared feed batches."""

    def __init__(self, batches: Sequence[dict[str, np.ndarray]]) -> None:
        self._batches = list(batches)
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return self._batches[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self._batches)


def quantize_int8_static(
    fp32: Path,
    dst: Path,
    preset: IsaPreset,
    calibration: Sequence[dict[str, np.ndarray]],
    method: str = "MinMax",
    per_channel: bool = True,
    keep_fp32: Sequence[str] = (),
    keep_post_activation: bool = True,
) -> dict[str, Any]:
    """fp32 graph -> QDQ INT8 graph calibrated on `calibration` feed batches."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    if method not in CALIBRATION_METHODS:
        raise UserError(f"unknown calibration method {method!r}; choose from {', '.join(CALIBRATION_METHODS)}")
    if not calibration:
        raise UserError("int8-static needs calibration text; none was given or it was empty")
    model = onnx.load(str(fp32))
    weights = {init.name for init in model.graph.initializer}
    excluded = resolve_nodes(model, keep_fp32)
    auto_kept = post_activation_matmuls(model) if keep_post_activation else []
    kept = [*excluded, *(n for n in auto_kept if n not in excluded)]
    targets = [
        n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights and n.name not in kept
    ]
    # embedding tables (Gather from a weight): stored in int8 too, or the 30k x 384 word table alone keeps
    # two thirds of the file in fp32 (int8-static was 66 MB against int8-dynamic's 22 MB)
    tables = [
        n.name for n in model.graph.node if n.op_type == "Gather" and n.input[0] in weights and n.name not in kept
    ]
    targets += tables

    class _Reader(CalibrationDataReader):  # the ORT base class is abstract; delegate to FeedsReader
        def __init__(self) -> None:
            self.feeds = FeedsReader(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return self.feeds.get_next()

    activation = QuantType.QUInt8 if preset.static_activation == "uint8" else QuantType.QInt8
    try:
        with quiet_quantizer():
            ort_quantize_static(
                str(fp32),
                str(dst),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=preset.reduce_range,
                activation_type=activation,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=targets,
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{method} calibration failed on this model ({first}); try --calibration-method MinMax"
        ) from exc
    quantized = onnx.load(str(dst))
    save_model(quantized, dst)
    return {
        "format": "QDQ (static)",
        "source_graph": "fp32",
        "weight_type": "int8",
        "activation_type": preset.static_activation,
        "per_channel": per_channel,
        "reduce_range": preset.reduce_range,
        "calibration_method": method,
        "calibration_batches": len(calibration),
        "kept_fp32": kept,
        "kept_fp32_post_activation": auto_kept,
        "quantized_matmuls": integer_matmul_count(quantized),
        "quantized_tables": tables,
    }


def convert_fp16(fp32: Path, dst: Path, info: GraphFacts) -> dict[str, Any]:
    """CUDA-target fusion, then fp16 weights and compute; graph inputs and outputs stay as they were."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(fused_model(fp32, info, use_gpu=True))
    with quiet_fuser():
        model.convert_float_to_float16(
            keep_io_types=True, op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *_FP16_KEEP_OPS})
        )
        model.topological_sort()  # the converter appends its Cast nodes at the end of the graph
    save_model(model.model, dst)
    return {
        "format": "fp16 (CUDA target)",
        "source_graph": "fused (GPU fusions)",
        "kept_fp32_ops": list(_FP16_KEEP_OPS),
    }


def initializer_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type name -> number of initializers (e.g. {"FLOAT16": 40, "INT8": 24})."""
    counts: dict[str, int] = {}
    for init in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(init.data_type)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
