"""Bad input fails in one line with exit 2 and writes nothing; a killed export leaves no directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studentpack.cli import main


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], match: str, progress: bool = False) -> str:
    """Exit 2 with one error line (after progress lines only when the mistake shows late)."""
    code = main(["export", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 or (progress and len(lines) > 1), err
    assert lines[-1].startswith("studentpack export: error: ") and match in lines[-1], err
    return lines[-1]


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--variants", "fp32,int4"], "unknown variant 'int4'"),
        (["--isa", "sse9"], "unknown ISA preset 'sse9'"),
        (["--calibration-method", "Magic", "--variants", "int8-static"], "unknown calibration method"),
        (["--variants", "fp16"], "cannot be validated here"),
        (["--variants", "int8-dynamic", "--device", "cuda"], "refused for --device cuda"),
        (["--device", "tpu"], "unknown device"),
        (["--variants", "fp32,int8-dynamic", "--calibration", "x.txt"], "only by the int8-static and openvino-int8"),
        (["--eval-task", "sst9", "--eval-data", "x"], "unknown --eval-task"),
        (["--eval-task", "stsb"], "needs --eval-data"),
        (["--min-mean-cosine", "2"], "must lie in [-1, 1]"),
        (["--triton", "t", "--triton-max-batch", "0"], "--triton-max-batch must be >= 1"),
        (["--triton", "t", "--triton-instances", "0"], "--triton-instances must be >= 1"),
        (["--variants", "openvino", "--device", "cuda"], "runs on the CPU only"),
    ],
)
def test_bad_options(tiny_bert_dir: Path, tmp_path: Path, capsys, extra: list[str], match: str) -> None:
    _fails([str(tiny_bert_dir), "--onnx", "--out", str(tmp_path / "o"), *extra], capsys, match)
    assert _entries(tmp_path) == []


def test_cuda_without_cuda_provider(tiny_bert_dir: Path, tmp_path: Path, capsys) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    _fails([str(tiny_bert_dir), "--onnx", "--out", str(tmp_path / "o"), "--device", "cuda"], capsys, "onnxruntime-gpu")
    assert _entries(tmp_path) == []


def test_bad_models(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "o")
    _fails([str(tmp_path / "missing"), "--onnx", "--out", out], capsys, "not found")
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    _fails([str(gpt), "--onnx", "--out", out], capsys, "supported encoders")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails([str(empty), "--onnx", "--out", out], capsys, "no config.json")
    _fails([str(gpt)], capsys, "--onnx")
    assert _entries(tmp_path) == ["empty", "gpt"]


def test_existing_out_and_empty_calibration(tiny_bert_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _fails([str(tiny_bert_dir), "--onnx", "--out", str(out)], capsys, "pass --overwrite")
    assert _entries(out) == ["keep.txt"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    args = [str(tiny_bert_dir), "--onnx", "--out", str(tmp_path / "o2"), "--variants", "int8-static"]
    _fails([*args, "--calibration", str(empty)], capsys, "no usable text")
    assert _entries(tmp_path) == ["empty.txt", "o"]


def test_keep_fp32_pattern_that_matches_nothing(tiny_bert_dir: Path, tmp_path: Path, capsys) -> None:
    args = [str(tiny_bert_dir), "--onnx", "--out", str(tmp_path / "o"), "--variants", "int8-dynamic"]
    # node names exist only once the graph does: this mistake shows after the fp32 export
    _fails([*args, "--keep-fp32", "no/such/node", "--threads", "1"], capsys, "matches no node", progress=True)
    assert _entries(tmp_path) == []


def test_keep_fp32_leaves_the_named_node_in_fp32(tiny_bert_dir: Path, tmp_path: Path, capsys) -> None:
    import onnx

    out = tmp_path / "o"
    pattern = "*layer.0/output/dense/MatMul"
    args = [str(tiny_bert_dir), "--onnx", "--out", str(out), "--variants", "int8-dynamic", "--keep-fp32", pattern]
    assert main(["export", *args, "--sample-texts", "8", "--threads", "1"]) == 0
    capsys.readouterr()
    record = json.loads((out / "int8-dynamic" / "export.json").read_text())
    assert record["quantization"]["kept_fp32"] == ["/encoder/encoder/layer.0/output/dense/MatMul"]
    assert record["quantization"]["quantized_matmuls"] == 6 * 4 - 1  # q, k, v, out, FFN in/out per layer
    graph = onnx.load(str(out / "int8-dynamic" / "model.onnx"))
    assert [n.op_type for n in graph.graph.node if n.name == record["quantization"]["kept_fp32"][0]] == ["MatMul"]


def test_config_file_and_set(tiny_bert_dir: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "export.yaml"
    config.write_text(f"model: {tiny_bert_dir}\nvariants: [fp32]\ngates:\n  max_abs: 0.001\n")
    out = tmp_path / "o"
    assert main(["export", "--onnx", "--config", str(config), "--out", str(out), "--set", "threads=1"]) == 0
    assert "ok       fp32" in capsys.readouterr().out
    assert json.loads((out / "fp32" / "export.json").read_text())["gates"]["max_abs"] == 0.001
    _fails(["--onnx", "--config", str(config), "--out", str(out), "--set", "gates.max_ab=1"], capsys, "unknown config")


def test_kill_mid_export_leaves_no_directory(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """SIGKILL while the fused graph is being built: nothing under the final name; the next run cleans up."""
    out = tmp_path / "onnx"
    cmd = [sys.executable, "-m", "studentpack", "export", str(tiny_bert_dir), "--onnx", "--out", str(out)]
    cmd += ["--variants", "fp32,fused,int8-dynamic", "--threads", "1", "--sample-texts", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    temp = tmp_path / f".onnx.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    try:
        while not (temp / ".work" / "fused").exists():  # fp32 done and gated, fused under way
            assert proc.poll() is None, "export finished before it could be killed"
            assert time.monotonic() < deadline, "export never reached the fused stage"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    (result,) = export_variants(
        ExportOptions(model=str(tiny_bert_dir), out=str(out), variants=("fp32",), threads=1), log=lambda _l: None
    )
    assert result.accepted and _entries(out) == ["fp32"]
    assert _entries(tmp_path) == ["onnx"]  # the killed run's temporary directory is gone
