"""The distributed path: 2 CPU processes (gloo) via torchrun end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from studentpack.distill.trainer import HEAD_FIT_LOG_ENV, parameter_digest
from tests.tiny import SENTENCES


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 4) + "\n")
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "studentpack", "distill",
        "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--out", str(out), "--method", "hs+mha",
        "--student-layers", "2", "--steps", "8", "--batch-size", "3", "--checkpoint-every", "4",
        "--device", "cpu", "--threads", "1", "--quiet", "--keep-final-checkpoint",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert manifest["world_size"] == 2
    digests = manifest["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    saved = AutoModel.from_pretrained(str(out / "student"))
    assert parameter_digest(saved) == digests[0], "the saved student is the weights both ranks hold"
    # both ranks' RNG states are checkpointed; the batch stream was sharded (2 x 3 sequences a step);
    # --keep-final-checkpoint left the last checkpoint (and only it) to look at
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000008"]
    assert sorted(p.name for p in (out / "checkpoints" / "step-00000008").iterdir()) == [
        "bundle.safetensors", "optimizer.pt", "rng-0.pt", "rng-1.pt", "state.json",
    ]  # fmt: skip
    assert manifest["tokens_seen"] > 0
    assert load_file(str(out / "student" / "model.safetensors"))


@pytest.mark.slow
def test_two_processes_fit_one_teacher_head(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """OD on a headless teacher: rank 0 fits and caches the head; rank 1 must load it (fitting there raises)."""
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 4) + "\n")
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "studentpack", "distill",
        "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--out", str(out), "--method", "od",
        "--student-layers", "2", "--steps", "4", "--batch-size", "3", "--fit-head-steps", "5",
        "--device", "cpu", "--threads", "1", "--quiet",
    ]  # fmt: skip
    fits = tmp_path / "fits.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", HEAD_FIT_LOG_ENV: str(fits)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert fits.read_text() == "0\n", "only rank 0 fits the head"
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert manifest["teacher_head"]["source"] == "fitted" and manifest["teacher_head"]["cached"] is False
    assert (out / "teacher_head" / "head.safetensors").is_file()
    digests = manifest["rank_weight_digests"]
    assert digests[0] == digests[1]
