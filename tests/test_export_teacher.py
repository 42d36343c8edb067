"""The real packaged teacher (all-MiniLM-L6-v2) through the default CPU variants; every gate must pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_packaged_teacher_passes_every_gate(tmp_path: Path) -> None:
    from studentpack.export.gate_inputs import LONG_TEXTS, OTHER_GENRE_TEXTS
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from studentpack.text.sources import packaged_teacher_dir

    packaged_teacher_dir()  # a clear error if the package is missing
    out = tmp_path / "onnx"
    results = export_variants(ExportOptions(model="default", out=str(out), threads=2), log=lambda _l: None)
    assert [(r.variant, r.accepted) for r in results] == [("fp32", True), ("fused", True), ("int8-dynamic", True)]
    records = {v: json.loads((out / v / "export.json").read_text()) for v in ("fp32", "fused", "int8-dynamic")}
    assert records["fp32"]["parity"]["max_abs"] <= 1e-4 and records["fused"]["parity"]["max_abs"] <= 1e-4
    assert {c["length"] for c in records["fused"]["parity"]["cases"]} >= {1, 512}
    fused = records["fused"]["fused_ops"]
    assert fused["Attention"] == 6 and fused["SkipLayerNormalization"] == 12 and fused["BiasGelu"] == 6
    accuracy = records["int8-dynamic"]["accuracy"]
    assert accuracy["mean_cosine"] >= 0.99 and accuracy["worst_cosine"] >= 0.95
    assert accuracy["texts"] == 256 + LONG_TEXTS + OTHER_GENRE_TEXTS  # the sample, maximum-length inputs, other genre
    assert records["int8-dynamic"]["quantization"]["quantized_matmuls"] == 36  # 6 weight GEMMs x 6 layers
    assert records["int8-dynamic"]["file_bytes"] < 0.3 * records["fp32"]["file_bytes"]
