"""Evaluations on the pipeline's tasks: of each distilled student where it lies, and of any model by its
directory or its served URL (the served evaluations run through this too)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from studentpack.bench.input_digests import dir_digest
from studentpack.bench.pipeline_config import PipelineConfig, StudentPlan
from studentpack.bench.pipeline_inputs import PipelineInputs
from studentpack.bench.units import Units
from studentpack.config import to_dict


class Evaluations:
    def __init__(self, cfg: PipelineConfig, inputs: PipelineInputs, units: Units) -> None:
        self.cfg, self.inputs, self.units = cfg, inputs, units

    def local(self, student: StudentPlan) -> None:
        """The student's evaluation on every task, run in this process on its directory."""
        model = self.units.out / student.name / "student"
        for task, _ in self.inputs.tasks:
            inputs = {"model": dir_digest(model), "task": task, "eval": to_dict(self.cfg.eval),
                      "data": self.inputs.data_digest}  # fmt: skip
            label = f"eval {student.name} {task} (local)"
            work = functools.partial(self.run, str(model), task, None, None)
            self.units.run(f"eval:{student.name}:{task}", label, inputs, self.units.out / student.name / "eval.json",
                           work)  # fmt: skip

    def run(self, model: str, task: str, teacher: str | None, out: Path | None) -> None:
        """Evaluate `model` (a directory or a served URL) on `task`; agreement is measured against `teacher`."""
        from studentpack.tasks import EvalConfig, evaluate

        settings = self.cfg.eval
        options: dict[str, Any] = {"model": model, "task": task, "batch_size": settings.batch_size}
        if task == "agreement":
            options["limit"] = settings.agreement_texts
            options["teacher"] = teacher or str(self.inputs.teacher_dir)
        else:
            options["data"] = str(Path(self.cfg.data or "") / task)
            options["limit"] = settings.limit
            if task == "sst2":
                options["train_limit"] = settings.probe_train
        if out is not None:
            options["out"] = str(out)
        evaluation = evaluate(EvalConfig(**options))
        value = evaluation.result.value
        self.units.say(f"  {task} {evaluation.result.metric}: {'n/a' if value is None else f'{value:.2f}'}")
