"""int8-static: QDQ graph with activation ranges calibrated on text, from the fp32 graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.export.variants import BuildContext, VariantSpec


def make(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    from studentpack.export.quantize import quantize_int8_static

    settings = quantize_int8_static(
        ctx.work / "fp32" / "model.onnx",
        directory / "model.onnx",
        ctx.p.preset,
        ctx.calibration_feeds(),
        method=ctx.opts.calibration_method,
        per_channel=ctx.opts.per_channel,
        keep_fp32=ctx.opts.keep_fp32,
    )
    return {"quantization": settings, "calibration": ctx.p.corpora.get("calibration")}


SPEC = VariantSpec("int8-static", make, lambda opts: ("fp32",))
