"""`run_pipeline(config)`: distill -> eval -> export -> serve -> load-test -> served eval -> report.

Layout under `config.out` (every stage's artifacts stay there):

    <student>/                  a distillation run (student/, log.jsonl) as `studentpack distill` writes it
    <student>/eval.json         local and served evaluations of the student and its variants
    <student>/onnx/<variant>/   exported variants (`studentpack export`)
    <student>/bench/<variant>/loadtest.json
    teacher/onnx/..., teacher/bench/torch/loadtest.json, teacher/eval.json
    report/                     report.md, report.json, pareto.svg
    logs/                       each child command's output; the server's log
    pipeline.json               per unit: inputs fingerprint, status, seconds (what a re-run skips); the budget
                                plan (calibration, steps per student and why), which a re-run reuses

Before any work, the budget (bench/budget.py) times the teacher here and sizes the budgeted students'
distillation to `budget_minutes`. After export, each model is served in the variant that ran fastest on
one text at a time in the export's speed trial, among those that passed their gate (bench/served_choice.py).
A static student (a table of token vectors) has no graph to export: it is served as it is (`<student>/bench/static`).

A unit that fails (a student that does not train, a variant that does not export) is reported and
its dependants are skipped; the other students go on, and the report covers what finished (bench/units.py).
Each stage's units are their own module: distill_units, evaluations, export_units, served_measurements.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from studentpack.bench import distill_units
from studentpack.bench.budget import REFERENCE_PROBE_MS, Calibration, calibrate
from studentpack.bench.budget_keeper import BudgetKeeper
from studentpack.bench.evaluations import Evaluations
from studentpack.bench.export_units import ExportUnits
from studentpack.bench.input_digests import corpus_chars
from studentpack.bench.pipeline_config import STATIC, PipelineConfig, StudentPlan
from studentpack.bench.pipeline_inputs import check_device, check_inputs
from studentpack.bench.pipeline_plan import TEACHER
from studentpack.bench.served_measurements import ServedMeasurements, ServedModel
from studentpack.bench.stages import Clock, Ledger
from studentpack.bench.units import Outcome, Units
from studentpack.config import to_dict
from studentpack.ground import atomic
from studentpack.ground.errors import UserError


class Pipeline:
    def __init__(self, cfg: PipelineConfig, force: bool, say: Callable[[str], None]) -> None:
        self.cfg, self.force, self.say = cfg, force, say
        self.started = time.monotonic()
        self.out = Path(cfg.out).expanduser()
        self.outcome = Outcome()
        self.inputs = check_inputs(cfg)  # the teacher resolved now too: a bad --teacher fails before any work

    def run(self) -> Outcome:
        cfg, inputs = self.cfg, self.inputs
        atomic.check_writable_dir(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        ledger = Ledger(self.out / "pipeline.json")
        tasks = [t for t, _ in inputs.tasks]
        budget = BudgetKeeper(cfg, ledger, inputs.distill_configs, tasks, corpus_chars(cfg), str(inputs.teacher_dir))
        plan = budget.start(self.force, self._calibrate)
        # the clock counts from the start, the timing of the teacher included: the budget is the whole run's
        clock = Clock(budget.estimates(budget.students()), self.say, started=self.started)
        units = Units(self.out, self.force, self.say, ledger, clock, self.outcome)
        for reason in plan.reasons:
            self.say(f"budget: {reason}")
        trained: list[StudentPlan] = []
        for planned in cfg.students:  # those the plan left out too: each is weighed again when its turn comes
            student = budget.revise(planned, trained, clock)
            past = {s.name for s in trained} | {planned.name}
            coming = [s for s in budget.students() if s.name not in past]
            clock.estimates = budget.estimates([*trained, *([student] if student else []), *coming])
            if student is not None and distill_units.distill(cfg, inputs, units, student):
                trained.append(student)
        for name in plan.dropped:
            self.outcome.notes.append(f"{name}: not distilled, the time budget left no room for it")
        evaluations = Evaluations(cfg, inputs, units)
        for student in trained if cfg.eval.local else []:
            evaluations.local(student)
        served = [ServedModel(f"{TEACHER}-torch", TEACHER, "torch", inputs.teacher_dir)]
        sources = [(s.name, self.out / s.name / "student") for s in trained if not s.static]
        if cfg.export_teacher:
            sources.insert(0, (TEACHER, inputs.teacher_dir))
        exports = ExportUnits(cfg, inputs, units)
        for run, source in sources:
            served += exports.export(run, source)
        if cfg.serve_student_torch:
            served += [ServedModel(f"{s.name}-torch", s.name, "torch", self.out / s.name / "student")
                       for s in trained if not s.static]  # fmt: skip
        # a static student is served as it is: its table is the model, there is no graph to export
        served += [ServedModel(f"{s.name}-{STATIC}", s.name, STATIC, self.out / s.name / "student")
                   for s in trained if s.static]  # fmt: skip
        ServedMeasurements(cfg, inputs, units, evaluations).measure(served)
        self.report(clock)
        self.outcome.seconds = clock.elapsed()
        return self.outcome

    def _calibrate(self) -> Calibration | None:
        if self.cfg.budget_speed is not None:
            return Calibration(round(self.cfg.budget_speed * REFERENCE_PROBE_MS, 1), "given (budget_speed)", 0)
        if self.cfg.budget_minutes is None or self.cfg.device.startswith("cuda"):
            return None
        self.say("timing the teacher on this machine to size the distillation (a few seconds)")
        return calibrate(self.inputs.teacher_dir)

    def report(self, clock: Clock) -> None:
        from studentpack.bench.report import write_report

        unit = "report"
        clock.begin(unit, "report")
        try:
            self.outcome.report = write_report([self.out], self.out / "report")
        except UserError as exc:
            self.outcome.failures[unit] = str(exc)
            self.say(f"FAILED report: {exc}")
        clock.end(unit)


def run_pipeline(cfg: PipelineConfig, force: bool = False, say: Callable[[str], None] | None = None) -> Outcome:
    say = say or (lambda line: print(f"studentpack pipeline: {line}", file=sys.stderr, flush=True))
    check_device(cfg.device)
    cfg, left_out = for_device(cfg)
    for note in left_out:
        say(note)
    pipeline = Pipeline(cfg, force, say)
    pipeline.outcome.notes += left_out
    outcome = pipeline.run()
    atomic.write_json(
        pipeline.out / "pipeline-summary.json",
        {
            "config": to_dict(cfg),
            "seconds": round(outcome.seconds, 1),
            "failures": outcome.failures,
            "notes": outcome.notes,
            "cpu_count": os.cpu_count(),
        },
    )
    return outcome


def for_device(cfg: PipelineConfig) -> tuple[PipelineConfig, list[str]]:
    """The configuration without the students its device cannot serve (static ones on a GPU), and why."""
    if not cfg.device.startswith("cuda") or not any(s.static for s in cfg.students):
        return cfg, []
    kept = tuple(s for s in cfg.students if not s.static)
    notes = [f"{s.name}: left out, a static student is served on CPU only (run it without --device cuda)"
             for s in cfg.students if s.static]  # fmt: skip
    if not kept:
        raise UserError("every student is static, and a static student is served on CPU only: drop --device cuda")
    return replace(cfg, students=kept), notes


def check_config(cfg: PipelineConfig) -> None:
    """Every check that needs no work: data layout, each student's distill settings, the teacher."""
    check_inputs(for_device(cfg)[0])


def config_json(cfg: PipelineConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2)
