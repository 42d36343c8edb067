"""End to end on the real packaged teacher (all-MiniLM-L6-v2): 50 steps of each method."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from studentpack.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mha", "hs", "od"])
def test_fifty_steps_on_the_packaged_teacher(method: str, tmp_path: Path) -> None:
    from transformers import AutoModel

    out = tmp_path / method
    args = ["distill", "--method", method, "--student-layers", "2", "--steps", "50", "--batch-size", "8",
            "--max-length", "64", "--lr", "3e-4", "--log-every", "1", "--fit-head-steps", "60",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 50
    for term in log[0]["terms"]:
        first = statistics.mean(r["terms"][term] for r in log[:10])
        last = statistics.mean(r["terms"][term] for r in log[-10:])
        assert last < first, f"{method}/{term}: {first:.4f} -> {last:.4f}"
    student = AutoModel.from_pretrained(str(out / "student"))
    assert student.config.num_hidden_layers == 2 and student.config.hidden_size == 384
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert manifest["teacher"]["name"] == "all-MiniLM-L6-v2"
    assert manifest["corpus"]["sources"] == ["embedded:english"]
    if method == "od":
        head = manifest["teacher_head"]
        assert head["source"] == "fitted" and head["mlm_loss_after"] < head["mlm_loss_before"]
