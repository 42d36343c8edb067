"""The GPU long-run script's file handling: students travel back in pieces under the device's file size
limit and are put back together exactly (the rest of the script is the CLI; its dry run is in the docs)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.benchmark_scripts import load_benchmark


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_benchmark("gpu_long_distill")
    monkeypatch.setattr(module, "CHUNK_BYTES", 4096)  # small, so a tiny model needs row cuts and several files
    return module


def test_students_split_under_the_limit_and_join_back(script: ModuleType, tmp_path: Path) -> None:
    student = tmp_path / "student"
    student.mkdir()
    weights = {
        "embeddings.word_embeddings.weight": torch.randn(100, 24),  # 4,800 bytes in fp16: cut by rows
        "encoder.layer.0.dense.weight": torch.randn(24, 24),
        "encoder.layer.0.dense.bias": torch.randn(24),
        "embeddings.position_ids": torch.arange(16),
    }
    save_file(weights, str(student / "model.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    files = script.split_student(student, out, "l3")
    assert all((out / f).stat().st_size <= 4096 + 1024 for f in files)  # the limit, plus the safetensors header
    assert len(files) == 2  # pieces of 4,080 and 720 bytes (rows), 1,152, 128, 48: first fit, largest first
    pieces: dict[str, torch.Tensor] = {}
    for name in files:
        pieces.update(load_file(str(out / name)))
    joined = script.join_pieces(pieces)
    assert joined.keys() == weights.keys()
    for name, tensor in weights.items():
        expected = tensor.to(torch.float16) if tensor.is_floating_point() else tensor
        assert torch.equal(joined[name], expected), name


def test_each_student_gets_a_share_of_what_is_left_after_its_scoring(script: ModuleType) -> None:
    import time

    assert script.distill_share(None, 2, 5, 10.0) is None  # no budget: no limit
    deadline = time.monotonic() + 400.0
    share = script.distill_share(deadline, 2, 5, 10.0)  # 400 s - 2 x 5 x 10 s of scoring, over 2 students
    assert 149.0 < share <= 150.0
    assert script.distill_share(deadline, 1, 5, 10.0) == pytest.approx(350.0, abs=1.0)
    assert script.distill_share(time.monotonic() + 20.0, 1, 5, 10.0) == 30.0  # never below a useful floor
