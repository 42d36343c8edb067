"""fused: the fp32 graph through onnxruntime's transformer fusions; gated on parity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.export.variants import BuildContext, VariantSpec


def make(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    from studentpack.export.optimize import fuse, fused_operator_counts, fusion_problems

    model = fuse(ctx.work / "fp32" / "model.onnx", directory / "model.onnx", ctx.info)
    counts = fused_operator_counts(model)
    problems = fusion_problems(counts, ctx.info)
    for problem in problems:
        ctx.log(f"fused: warning: {problem}")
    return {"fused_ops": counts, "fusion_complete": not problems, "fusion_problems": problems}


SPEC = VariantSpec("fused", make, lambda opts: ("fp32",))
