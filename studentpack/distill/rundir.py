"""The layout of a run directory, and the checks on it before a run starts or resumes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.config import build, to_dict
from studentpack.distill import checkpoint
from studentpack.distill.config import DistillConfig
from studentpack.ground import atomic
from studentpack.ground.errors import UserError

CONFIG = "distill_config.json"
LOG = "log.jsonl"
STUDENT = "student"
MANIFEST = "studentpack.json"
INPUTS = "inputs.json"  # the teacher's and the corpus's sha256 when the run started


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def student(self) -> Path:
        return self.path / STUDENT

    def finished(self) -> bool:
        """The student is complete and no newer run has started here: `--overwrite` keeps the previous
        student until the new one replaces it, and writes the new run's config first."""
        manifest = self.student / MANIFEST
        if not manifest.is_file():
            return False
        return not self.config.is_file() or manifest.stat().st_mtime_ns >= self.config.stat().st_mtime_ns

    def is_run(self) -> bool:
        return self.config.is_file() or bool(checkpoint.list_checkpoints(self.path)) or self.finished()


def check_fresh(run: RunDir, overwrite: bool) -> None:
    """Refuse to clobber a finished run, an unfinished one, or a directory that is not ours."""
    path = run.path
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file")
    atomic.check_writable_dir(path, "--out")  # a read-only place fails now, not after the training
    if not path.exists() or not any(path.iterdir()):
        return
    if not run.is_run():
        raise UserError(f"--out {path} exists and is not a studentpack run directory; choose another --out")
    if overwrite:
        return
    if run.finished():
        raise UserError(f"--out {path} already holds a finished run; pass --overwrite to replace it")
    raise UserError(f"--out {path} holds an unfinished run; continue it with --resume {path} or pass --overwrite")


def clear(run: RunDir) -> None:
    """Remove what an earlier distillation wrote here, and nothing else: exports, load tests, evaluations
    and fine-tuned classifiers in the same run directory stay. The student stays too, until the new one
    is complete and replaces it (write_student), so a run that fails leaves the previous student."""
    from studentpack.distill.checkpoint import ROOT as CHECKPOINTS
    from studentpack.distill.head_fit import CACHE as HEAD_CACHE

    for name in (CONFIG, LOG, INPUTS, CHECKPOINTS, HEAD_CACHE):
        atomic.remove_tree(run.path / name)


def check_resumable(run: RunDir) -> DistillConfig:
    if not run.path.is_dir():
        raise UserError(f"--resume {run.path}: no such run directory")
    if run.finished():
        raise UserError(f"--resume {run.path}: this run already finished (its student is in {run.student})")
    if not run.config.is_file() or checkpoint.latest_checkpoint(run.path) is None:
        raise UserError(f"--resume {run.path}: no checkpoint to resume from")
    return read_config(run)


def retire_checkpoints(run: RunDir, keep_final: bool) -> Path | None:
    """Once the run is finished, delete its checkpoints (optimizer state included), or all but the last.

    Does nothing before the student directory is complete under its final name (`finished`), so
    a failure up to that point leaves every checkpoint for --resume. Returns the kept checkpoint.
    """
    if not run.finished():
        return None
    return checkpoint.prune(run.path, 1 if keep_final else 0)


def input_digests(plan: Any) -> dict[str, str]:
    """What the run reads and must not change under it: the teacher's files and the corpus text."""
    from studentpack.ground.provenance import hash_directory

    return {"teacher_sha256": hash_directory(plan.teacher.path), "corpus_sha256": plan.corpus.sha256}


def write_inputs(run: RunDir, digests: dict[str, str]) -> None:
    atomic.write_json(run.path / INPUTS, digests)


def check_inputs(run: RunDir, digests: dict[str, str], allow_changed: bool) -> str:
    """Refuse to resume on a teacher or corpus other than the run started with; '' or a note."""
    path = run.path / INPUTS
    if not path.is_file():
        return f"{path.name} is missing (a run from an older studentpack): the inputs could not be compared"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    changed = [name.removesuffix("_sha256") for name, value in digests.items() if recorded.get(name) != value]
    if changed and not allow_changed:
        what = " and ".join(changed)
        raise UserError(
            f"--resume {run.path}: the {what} changed since this run started (sha256 differs from {path.name}); "
            "restore it, or pass --allow-changed-inputs to continue on the new one"
        )
    return f"continuing on a changed {' and '.join(changed)} (--allow-changed-inputs)" if changed else ""


def write_config(run: RunDir, config: DistillConfig) -> None:
    atomic.write_json(run.config, to_dict(config))


def read_config(run: RunDir) -> DistillConfig:
    try:
        data = json.loads(run.config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {run.config}: {exc}") from exc
    if isinstance(data, dict):
        data.setdefault("pack", False)  # runs saved before packing existed went a line per sequence
        data.setdefault("isolate_lines", False)  # and packed runs before isolation joined their lines
        data.setdefault("split_sentences", False)  # and read paragraphs whole
    return build(DistillConfig, data)


def truncate_log(run: RunDir, last_step: int) -> None:
    """Drop log lines past the checkpoint we resume from: those steps will be run again."""
    if not run.log.is_file():
        return
    kept = [line for line in run.log.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    atomic.write_text(run.log, "".join(line + "\n" for line in kept))
