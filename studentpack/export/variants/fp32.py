"""fp32: the model exported by torch.onnx.export; gated on parity with PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.export.variants import BuildContext, VariantSpec


def make(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    from studentpack.export.onnx import export_fp32

    export_fp32(ctx.module, ctx.info, directory / "model.onnx")
    return {}


SPEC = VariantSpec("fp32", make, lambda opts: ())
