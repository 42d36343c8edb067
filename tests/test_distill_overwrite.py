"""`distill --overwrite` replaces the distillation and nothing else in the run directory."""

from __future__ import annotations

import json
from pathlib import Path

from studentpack.cli import main
from studentpack.distill.rundir import RunDir
from tests.killing import kill_when, last_checkpoint_step, studentpack
from tests.test_eval_cli import FINETUNE
from tests.test_eval_support import sst2_dir

DISTILL = ["--method", "hs", "--student-layers", "1", "--batch-size", "4", "--max-length", "32",
           "--checkpoint-every", "2", "--threads", "1", "--quiet"]  # fmt: skip


def test_overwrite_keeps_exports_evaluations_and_classifiers(tiny_bert_dir: Path, corpus: Path, tmp_path: Path,
                                                             capsys) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    run = tmp_path / "run"
    base = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--out", str(run), *DISTILL]
    assert main([*base, "--steps", "3"]) == 0
    data = sst2_dir(tmp_path / "sst2-data")
    assert main(["eval", str(run / "student"), "--task", "sst2", "--data", str(data), "--mode", "finetune",
                 *FINETUNE]) == 0  # fmt: skip
    assert main(["export", str(run / "student"), "--onnx", "--variants", "fp32", "--no-speed-trial"]) == 0
    capsys.readouterr()
    others = [run / "sst2" / "studentpack.json", run / "eval.json", run / "onnx" / "fp32" / "model.onnx"]
    assert all(p.is_file() for p in others), [p for p in others if not p.is_file()]
    first = (run / "student" / "studentpack.json").read_text()

    # a new run killed mid-way (the first run's checkpoints went when its student was saved): the
    # previous student is still whole, and the run resumes
    assert not (run / "checkpoints").exists()
    kill_when(studentpack(*base, "--steps", "6", "--overwrite"), lambda: last_checkpoint_step(run) >= 2)
    assert (run / "student" / "studentpack.json").read_text() == first
    assert all(p.is_file() for p in others)
    assert not RunDir(run).finished()  # the old student is not this run's result (the pipeline asks this)
    assert main(["distill", "--resume", str(run), "--quiet"]) == 0
    assert RunDir(run).finished()

    second = json.loads((run / "student" / "studentpack.json").read_text())
    assert second["steps"] == 6 and json.loads(first)["steps"] == 3  # replaced by the new run's student
    assert all(p.is_file() for p in others)
    assert not (run / "checkpoints").exists()
