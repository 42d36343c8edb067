"""fp16: GPU fusions then half-precision weights and compute (CUDA target), from the fp32 graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.export.variants import BuildContext, VariantSpec


def make(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    import onnx

    from studentpack.export.optimize import fused_operator_counts
    from studentpack.export.quantize import convert_fp16

    settings = convert_fp16(ctx.work / "fp32" / "model.onnx", directory / "model.onnx", ctx.info)
    return {"quantization": settings, "fused_ops": fused_operator_counts(onnx.load(str(directory / "model.onnx")))}


SPEC = VariantSpec("fp16", make, lambda opts: ("fp32",))
