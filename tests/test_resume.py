"""A run killed with SIGKILL and resumed ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file

from studentpack.cli import main
from tests.killing import checkpoint_steps, kill_when, last_checkpoint_step, last_logged_step, studentpack
from tests.tiny import SENTENCES

ARGS = ["--method", "hs+mha", "--student-layers", "2", "--steps", "16", "--batch-size", "4",
        "--checkpoint-every", "5", "--log-every", "1", "--threads", "1", "--quiet"]  # fmt: skip


def _run_killed_when(moment: Callable[[Path], bool], teacher: Path, corpus: Path, out: Path, *extra: str) -> None:
    """`studentpack distill` in a child process, SIGKILLed once `moment(out)` holds."""
    cmd = studentpack("distill", "--teacher", str(teacher), "--corpus", str(corpus), "--out", str(out), *ARGS, *extra)
    kill_when(cmd, lambda: moment(out))


def test_resume_after_sigkill_matches_uninterrupted(tiny_bert_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 5) + "\n")
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    base = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), *ARGS]
    assert main([*base, "--out", str(whole)]) == 0

    # killed 2 steps past the checkpoint at step 10: the log runs ahead of the newest checkpoint
    _run_killed_when(lambda run: last_logged_step(run) >= 12, tiny_bert_dir, corpus, broken)
    assert not (broken / "student").exists()
    assert sorted(p.name for p in (broken / "checkpoints").iterdir() if not p.name.startswith(".")) == [
        "step-00000005",
        "step-00000010",
    ]
    assert last_logged_step(broken) > 10, "the kill must leave log lines past the checkpoint to drop on resume"

    assert main(["distill", "--resume", str(broken), "--quiet"]) == 0
    want = load_file(str(whole / "student" / "model.safetensors"))
    got = load_file(str(broken / "student" / "model.safetensors"))
    assert want.keys() == got.keys()
    for name in want:
        assert (want[name] == got[name]).all(), name
    steps = [json.loads(x)["step"] for x in (broken / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17)), "resumed log must continue from the checkpoint without duplicates"
    whole_log = (whole / "log.jsonl").read_text().splitlines()
    broken_log = (broken / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in whole_log] == [json.loads(x)["loss"] for x in broken_log]


def test_kill_during_the_first_steps_leaves_nothing_resumable_or_finished(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "run"
    _run_killed_when(lambda run: last_logged_step(run) >= 2, tiny_bert_dir, corpus, out)
    assert checkpoint_steps(out) == [] and not (out / "student").exists()
    assert main(["distill", "--resume", str(out)]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


def test_tokens_seen_survive_a_resume_when_checkpoints_fall_between_log_lines(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 5) + "\n")
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    # checkpoints every 5 steps, log lines every 3: the checkpoint at step 10 falls inside a log window
    base = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), *ARGS, "--log-every", "3"]
    assert main([*base, "--out", str(whole)]) == 0
    _run_killed_when(lambda run: last_checkpoint_step(run) >= 10, tiny_bert_dir, corpus, broken, "--log-every", "3")
    assert checkpoint_steps(broken)[-1] == 10, "the resume must start from a checkpoint between log lines"
    assert main(["distill", "--resume", str(broken), "--quiet"]) == 0
    want = json.loads((whole / "student" / "studentpack.json").read_text())["tokens_seen"]
    got = json.loads((broken / "student" / "studentpack.json").read_text())["tokens_seen"]
    assert got == want > 0


def test_resume_refuses_an_edited_corpus_unless_allowed(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 5) + "\n")
    out = tmp_path / "run"
    _run_killed_when(lambda run: last_checkpoint_step(run) >= 5, tiny_bert_dir, corpus, out)
    assert json.loads((out / "inputs.json").read_text())["corpus_sha256"]
    corpus.write_text("\n".join(SENTENCES[::-1] * 5) + "\n")  # same lines, another order: another corpus
    assert main(["distill", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the corpus changed since this run started" in err and "--allow-changed-inputs" in err
    assert main(["distill", "--resume", str(out), "--quiet", "--allow-changed-inputs"]) == 0
    assert "continuing on a changed corpus" in capsys.readouterr().err


def test_fp16_loss_scaler_state_survives_a_checkpoint(tmp_path: Path) -> None:
    """Under fp16 the loss scale and its growth tracker are part of the run: a resume that restarted
    them at 65536 would skip steps and train differently from the uninterrupted run."""
    import torch
    from accelerate import Accelerator

    from studentpack.distill import checkpoint

    def accelerator_with_scaler() -> Accelerator:
        acc = Accelerator(cpu=True)
        acc.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=3)  # what fp16 on CUDA sets
        return acc

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    acc = accelerator_with_scaler()
    scaler = acc.scaler
    for overflow in (True, False, False):  # one overflow halves the scale; two clean steps advance the tracker
        optimizer.zero_grad()
        scaler.scale(model(torch.ones(1, 4)).sum()).backward()
        if overflow:
            model.weight.grad[0, 0] = float("inf")  # type: ignore[index]
        scaler.step(optimizer)
        scaler.update()
    saved = scaler.state_dict()
    assert saved["scale"] == 2.0**15 and saved["_growth_tracker"] == 2
    checkpoint.save(acc, tmp_path, 7, model, optimizer, {"tokens_seen": 1}, keep=2)

    fresh = accelerator_with_scaler()
    checkpoint.load(fresh, tmp_path / "checkpoints" / "step-00000007", model, optimizer)
    assert fresh.scaler.state_dict() == saved


def test_a_checkpoint_is_on_disk_before_its_name_says_whole(tmp_path: Path, fsynced: list[str]) -> None:
    """Every file of a checkpoint and the directories holding it are fsynced before and after the rename."""
    import torch
    from accelerate import Accelerator

    from studentpack.distill import checkpoint

    model = torch.nn.Linear(4, 2)
    checkpoint.save(Accelerator(cpu=True), tmp_path, 3, model, torch.optim.AdamW(model.parameters()), {}, keep=2)
    final = tmp_path / "checkpoints" / "step-00000003"
    names = {Path(p).name for p in fsynced}
    assert {"bundle.safetensors", "optimizer.pt", "rng-0.pt", "state.json"} <= names
    root = str(tmp_path / "checkpoints")
    last_file = max(i for i, p in enumerate(fsynced) if Path(p).name == "bundle.safetensors")
    assert final.is_dir() and root in fsynced[last_file:]  # the rename's directory entry, after the files
