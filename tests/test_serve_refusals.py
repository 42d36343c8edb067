"""`studentpack serve` refuses variants that failed their gate or were quantized for another CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studentpack.cli import main
from studentpack.ground.errors import UserError
from studentpack.ground.isa import preset_mismatch
from studentpack.serving.backends import check_model_dir


def _variant(path: Path, **record: object) -> Path:
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(b"not read before the checks")
    (path / "export.json").write_text(json.dumps({"schema": "studentpack.export/1", **record}))
    return path


def test_a_rejected_variant_is_refused_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rejected = _variant(tmp_path / "onnx" / "rejected" / "int8-dynamic", status="rejected", reason="cosine 0.93")
    assert main(["serve", str(rejected)]) == 2
    err = capsys.readouterr().err
    assert "failed its export gate (cosine 0.93)" in err and "--force" in err and "Traceback" not in err
    check_model_dir(rejected, force=True)  # forced: the checks let it through to loading
    moved = _variant(tmp_path / "elsewhere" / "int8", status="accepted")
    check_model_dir(moved)
    with pytest.raises(UserError, match="under rejected/"):
        check_model_dir(_variant(tmp_path / "x" / "rejected" / "fp32", status="accepted"))


def test_an_int8_variant_for_another_cpu_is_refused(tmp_path: Path) -> None:
    foreign = _variant(tmp_path / "int8", status="accepted", isa={"preset": "arm64"})
    with pytest.raises(UserError, match="re-export it here"):
        check_model_dir(foreign)
    check_model_dir(foreign, force=True)


def test_preset_mismatch_knows_vnni_saturation() -> None:
    assert "saturate" in preset_mismatch("avx512_vnni", ["avx2", "fma"], "x86_64")
    assert preset_mismatch("avx512_vnni", ["avx2", "avx512_vnni"], "x86_64") == ""
    assert preset_mismatch("avx2", ["avx2"], "x86_64") == ""  # 7-bit weights run safely anywhere on x86
    assert preset_mismatch("avx2", ["avx512_vnni"], "x86_64") == ""
    assert "ARM64" in preset_mismatch("arm64", ["avx2"], "x86_64")
    assert preset_mismatch("arm64", ["asimd"], "aarch64") == ""


def test_a_variant_is_not_served_past_the_length_its_gate_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gated = _variant(tmp_path / "int8", status="accepted", max_length=512, gated_length=128)
    check_model_dir(gated, max_length=128)
    check_model_dir(gated, max_length=100)
    with pytest.raises(UserError, match="up to 128 tokens, not the 256 asked for"):
        check_model_dir(gated, max_length=256)
    check_model_dir(gated, force=True, max_length=256)
    assert main(["serve", str(gated), "--max-length", "512"]) == 2
    assert "re-export with --max-length 512" in capsys.readouterr().err
    short_model = _variant(tmp_path / "short", status="accepted", max_length=64, gated_length=64)
    check_model_dir(short_model, max_length=128)  # serve caps at the model's own maximum: 64 is all it runs
