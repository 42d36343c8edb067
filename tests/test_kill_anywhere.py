"""SIGKILL at seeded random moments (slow): distill (checkpoint writes included) and export are killed
again and again; every time, whatever looks complete is complete, and the work resumes or is redone
cleanly to the end."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from studentpack.ground import atomic
from tests.killing import checkpoint_steps, run_until_killed
from tests.tiny import SENTENCES

pytestmark = pytest.mark.slow

KILLS = 6
DISTILL = ["--method", "hs+mha", "--student-layers", "2", "--steps", "150", "--batch-size", "4",
           "--checkpoint-every", "2", "--log-every", "1", "--threads", "1", "--quiet"]  # fmt: skip


def check_distill_dir(run: Path) -> None:
    """Complete or absent: every checkpoint and the student under their final names load whole."""
    for found in sorted((run / "checkpoints").glob("step-*")) if (run / "checkpoints").is_dir() else []:
        assert sorted(p.name for p in found.iterdir()) == [
            "bundle.safetensors", "optimizer.pt", "rng-0.pt", "state.json",
        ], found  # fmt: skip
        load_file(str(found / "bundle.safetensors"))
        assert json.loads((found / "state.json").read_text())["step"] == int(found.name.split("-")[1])
    if (run / "student").exists():
        json.loads((run / "student" / "studentpack.json").read_text())
        load_file(str(run / "student" / "model.safetensors"))
    for leftover in run.parent.iterdir():
        assert leftover.name in (run.name, "text.txt") or atomic.is_temporary(leftover), leftover


def test_distill_killed_anywhere_resumes_to_a_whole_student(tiny_bert_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 8) + "\n")
    run = tmp_path / "run"
    start = [sys.executable, "-m", "studentpack", "distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus),
             "--out", str(run), *DISTILL]  # fmt: skip
    resume = [sys.executable, "-m", "studentpack", "distill", "--resume", str(run), "--quiet"]

    def next_command() -> list[str]:
        """Resume from a checkpoint, or start again when no kill came after one (a slow start on a busy machine)."""
        return resume if checkpoint_steps(run) else [*start, "--overwrite"]

    rng = random.Random(7)
    steps_reached = []
    for _ in range(KILLS):
        code = run_until_killed(next_command(), rng.uniform(3.0, 9.0))
        check_distill_dir(run)
        logged = (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").exists() else []
        steps_reached.append(json.loads(logged[-1])["step"] if logged else 0)
        if code is not None:  # it finished before the kill
            assert code == 0
            break
    final = subprocess.run(next_command(), capture_output=True, text=True, timeout=600) \
        if not (run / "student").exists() else None  # fmt: skip
    assert final is None or final.returncode == 0, final.stderr[-2000:]
    check_distill_dir(run)
    manifest = json.loads((run / "student" / "studentpack.json").read_text())
    assert manifest["steps"] == 150
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 151)), "the log continues from each checkpoint without gaps or repeats"
    print(f"\ndistill killed {len(steps_reached)} times at logged steps {steps_reached}; resumed to step 150")


def test_export_killed_anywhere_leaves_only_whole_variants(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    out = tmp_path / "onnx"
    cmd = [sys.executable, "-m", "studentpack", "export", str(tiny_bert_dir), "--onnx", "--variants",
           "fp32,int8-dynamic", "--out", str(out), "--overwrite"]  # fmt: skip
    rng = random.Random(11)
    for _ in range(KILLS):
        code = run_until_killed(cmd, rng.uniform(2.0, 14.0))
        for variant in (p for p in out.iterdir() if not atomic.is_temporary(p)) if out.is_dir() else []:
            if variant.name == "rejected":
                continue
            if (variant / "export.json").exists() or (variant / "model.onnx").exists():
                json.loads((variant / "export.json").read_text())
                ort.InferenceSession(str(variant / "model.onnx"), providers=["CPUExecutionProvider"])
        if code is not None:
            assert code == 0
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=600).returncode == 0
    assert sorted(p.name for p in out.iterdir() if not atomic.is_temporary(p)) == ["fp32", "int8-dynamic"]
