"""The pipeline's inputs, checked before any work: the device, the evaluation tasks the data holds, each
student's distill settings and the teacher. A typo fails here, not an hour into the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.bench.input_digests import content_digest
from studentpack.bench.pipeline_config import PipelineConfig, StudentPlan
from studentpack.ground.cuda import require_ort_cuda, require_torch_cuda
from studentpack.ground.errors import UserError


@dataclass(frozen=True)
class PipelineInputs:
    tasks: list[tuple[str, str]]  # (task, how it is scored)
    data_digest: list[str] | None  # each task's data, by content
    distill_configs: dict[str, dict[str, Any]]  # student name -> its distill settings as plain data
    teacher_dir: Path


def check_inputs(cfg: PipelineConfig) -> PipelineInputs:
    """Every check that needs no work: data layout, each student's distill settings, the teacher."""
    from studentpack.text.sources import resolve_model

    tasks = eval_tasks(cfg.data)
    # by content, not path: data edited in place must not leave its evaluations and load tests "unchanged"
    data_digest = [content_digest(Path(cfg.data).expanduser() / task) for task, _ in tasks] if cfg.data else None
    distill_configs = {s.name: checked_distill_config(cfg, s) for s in cfg.students}
    return PipelineInputs(tasks, data_digest, distill_configs, resolve_model(cfg.teacher).path)


def check_device(device: str) -> None:
    """A GPU asked for and missing is an error before any work, never a quiet CPU run."""
    require_torch_cuda(device, "--device")
    require_ort_cuda(device)


def eval_tasks(data: str | None) -> list[tuple[str, str]]:
    """Agreement without labelled data; STS-B zero-shot and the SST-2 probe with a data directory."""
    if data is None:
        return [("agreement", "zeroshot")]
    root = Path(data).expanduser()
    if not root.is_dir():
        raise UserError(f"data {data} is not a directory (expected one holding stsb/ and sst2/, like ../shared/data)")
    tasks = []
    from studentpack.tasks import data as D

    if (root / "stsb").is_dir():
        D.locate(str(root / "stsb"), "eval")
        tasks.append(("stsb", "zeroshot"))
    if (root / "sst2").is_dir():
        D.locate(str(root / "sst2"), "eval")
        D.locate(str(root / "sst2"), "train")
        tasks.append(("sst2", "probe"))
    if not tasks:
        raise UserError(f"data {data} holds neither stsb/ nor sst2/ (each with dev.* and train.* files)")
    return tasks


def checked_distill_config(cfg: PipelineConfig, student: StudentPlan) -> dict[str, Any]:
    """The student's distill settings, validated now (a typo fails before any work), as plain data."""
    from studentpack.config import build
    from studentpack.distill.config import DistillConfig

    mapping = cfg.distill_mapping(student)
    try:
        if student.static:
            from studentpack.distill.static_run import refuse_other_settings

            refuse_other_settings(mapping)
        resolved = build(DistillConfig, mapping)
    except UserError as exc:
        raise UserError(f"student {student.name}: {exc}") from exc
    if student.static:
        return mapping  # a table has no steps: `steps` would be refused by its run
    return {**mapping, "steps": resolved.steps}  # distill's default steps, when the plan names none
