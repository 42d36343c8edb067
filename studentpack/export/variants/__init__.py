"""The export variants, one family per module, and the table the export pipeline builds from.

Each module defines `SPEC`: how the variant's graph is made from the graphs built before it, and which
graphs it depends on (a variant built from a graph that failed its gate is not handed over). Whether a
variant is gated on parity or on accuracy is `presets.PARITY_VARIANTS`. Adding a variant is a module
here and a line in `registry()`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class BuildContext(Protocol):
    """What a variant's `make` may use: the export's options, the loaded model, and the work directory
    in which every graph built so far lives under <work>/<variant>/ (model.onnx, or model.xml for OpenVINO)."""

    opts: Any  # options.ExportOptions
    p: Any  # options.Plan (preset, calibration texts, corpora)
    work: Path
    module: Any  # the torch module being exported
    info: Any  # export.onnx.GraphFacts

    def log(self, line: str) -> None: ...

    def calibration_feeds(self, batch: int = 8) -> list[dict[str, np.ndarray]]: ...


@dataclass(frozen=True)
class VariantSpec:
    name: str
    make: Callable[[BuildContext, Path], dict[str, Any]]  # writes <dir>/model.onnx (or .xml), returns its figures
    parents: Callable[[Any], tuple[str, ...]]  # ExportOptions -> the graphs it is built from


@functools.cache
def registry() -> dict[str, VariantSpec]:
    """Variant name -> spec, in build order (a variant comes after the graphs it is built from). Built on
    first use: the variant modules import heavy libraries only inside `make`, but are not needed to plan."""
    from studentpack.export.variants import fp16, fp32, fused, int8_dynamic, int8_static, openvino

    specs = (
        fp32.SPEC,
        fused.SPEC,
        int8_dynamic.SPEC,
        int8_static.SPEC,
        fp16.SPEC,
        openvino.SPEC,
        openvino.BF16_SPEC,
        openvino.INT8_SPEC,
    )
    return {spec.name: spec for spec in specs}


def needed(wanted: tuple[str, ...], opts: Any) -> set[str]:
    """The wanted variants and every graph they are built from, however deep."""
    specs = registry()
    out = set(wanted)
    for name in reversed(specs):  # build order reversed: a variant's parents are visited after it
        if name in out:
            out.update(specs[name].parents(opts))
    return out
