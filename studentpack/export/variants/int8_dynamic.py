"""int8-dynamic: weights quantized ahead, activations at run time, from the fp32 (or fused) graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.export.variants import BuildContext, VariantSpec


def make(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    import onnx

    from studentpack.export.optimize import fused_operator_counts
    from studentpack.export.quantize import quantize_int8_dynamic

    settings = quantize_int8_dynamic(
        ctx.work / ctx.opts.int8_source / "model.onnx",
        directory / "model.onnx",
        ctx.p.preset,
        per_channel=ctx.opts.per_channel,
        keep_fp32=ctx.opts.keep_fp32,
    )
    settings["source_graph"] = ctx.opts.int8_source  # the caller knows which graph it passed
    return {"quantization": settings, "fused_ops": fused_operator_counts(onnx.load(str(directory / "model.onnx")))}


def parents(opts: Any) -> tuple[str, ...]:
    return ("fp32", "fused") if opts.int8_source == "fused" else ("fp32",)


SPEC = VariantSpec("int8-dynamic", make, parents)
