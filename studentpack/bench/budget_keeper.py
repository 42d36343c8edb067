"""The pipeline's budget while it runs: the plan made at the start, revised before each budgeted student.

At the start: a timing of the teacher here (bench/budget.py) and a plan of steps per student. Before
each budgeted student is distilled, the plan is made again for what is left: the time left in the
budget, and the cost model scaled by how the finished units compared with their estimates (the
Clock's ratio). A machine slower than its timing said thus takes steps from the students still to
come, never from the fixed ones. Every decision is written to pipeline.json as it is made; a re-run of
the same configuration reuses them, so no finished student is trained again for a new timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from studentpack.bench import budget as B
from studentpack.bench.pipeline_config import PipelineConfig, StudentPlan
from studentpack.bench.pipeline_plan import plan_budget, unit_estimates, wanted_steps
from studentpack.bench.stages import Clock, Ledger, fingerprint
from studentpack.config import to_dict

SECTION = "budget"


class BudgetKeeper:
    def __init__(
        self,
        cfg: PipelineConfig,
        ledger: Ledger,
        mappings: dict[str, dict[str, Any]],
        tasks: list[str],
        corpus_chars: int,
        identity: str,
    ) -> None:
        self.cfg, self.ledger, self.tasks, self.corpus_chars = cfg, ledger, tasks, corpus_chars
        self.mappings = mappings  # student -> its distill mapping (wanted steps)
        self.key = fingerprint({"config": to_dict(cfg), "identity": identity})
        self.plan: B.BudgetPlan
        self.reused = False

    def start(self, force: bool, calibrate: Callable[[], B.Calibration | None]) -> B.BudgetPlan:
        """The plan of an earlier run of this configuration, else a new one (timing this machine)."""
        stored = self.ledger.sections.get(SECTION) or {}
        if not force and stored.get("fingerprint") == self.key:
            self.plan, self.reused = B.BudgetPlan(**stored["plan"]), True
            self.plan.reasons = [*self.plan.reasons, "reused the plan of an earlier run of this configuration"]
            return self.plan
        self.plan = plan_budget(self.cfg, lambda s: self.mappings[s.name], self.tasks, self.corpus_chars, calibrate())
        self._save()
        return self.plan

    @property
    def factor(self) -> float:
        return float((self.plan.calibration or {}).get("factor") or 1.0)

    def students(self) -> list[StudentPlan]:
        """The students the plan keeps, at its steps."""
        return [replace(s, steps=self.plan.steps[s.name]) for s in self.cfg.students if s.name in self.plan.steps]

    def estimates(self, students: list[StudentPlan]) -> dict[str, float]:
        mappings = {s.name: {**self.mappings[s.name], "steps": s.steps} for s in students}
        return unit_estimates(self.cfg, students, mappings, self.tasks, self.corpus_chars, self.factor)

    def revise(self, student: StudentPlan, done: list[StudentPlan], clock: Clock) -> StudentPlan | None:
        """Just before `student` is distilled: its steps for the time left (None: left out). Students in
        `done` are past distillation; their remaining units (export, load test...) still count. A student
        the start's plan left out is weighed again too: the timing at the start may have been pessimistic."""
        if self.reused or self.plan.budget_s is None or not student.budgeted:
            return replace(student, steps=self.plan.steps[student.name]) if student.name in self.plan.steps else None
        past = {d.name for d in done}
        pending = [s for s in self.cfg.students if s.name not in past]
        finished = set(clock.actual) | clock.skipped

        def cost(steps: dict[str, int]) -> float:
            planned = [*done, *(replace(s, steps=steps[s.name]) for s in pending if s.name in steps)]
            left = {u: v for u, v in self.estimates(planned).items() if u not in finished}
            windows = sum(v for u, v in left.items() if u.startswith("loadtest:"))  # fixed in seconds: not scaled
            return (sum(left.values()) - windows) * clock.scale() + windows

        wanted = [B.Wanted(s.name, wanted_steps(self.mappings[s.name]), s.budgeted, s.min_steps) for s in pending]
        steps, _, _ = B.allocate(wanted, cost, self.plan.budget_s * B.PLAN_MARGIN - clock.elapsed())
        before = self.plan.steps.get(student.name)
        for name in [s.name for s in pending]:
            self.plan.steps.pop(name, None)
            if name in steps:
                self.plan.steps[name] = steps[name]
        self.plan.dropped = [s.name for s in self.cfg.students if s.name not in self.plan.steps and s.name not in past]
        if student.name not in steps:
            self.plan.reasons.append(f"{student.name} left out when its turn came: the time left did not hold it")
        elif steps[student.name] != before:
            self.plan.reasons.append(f"{student.name} re-planned when its turn came: {before or 'left out'} -> "
                                     f"{steps[student.name]} steps (finished units ran {clock.scale():.2f}x their "
                                     "estimates)")  # fmt: skip
        self.plan.estimate_s = round(clock.elapsed() + cost({n: steps[n] for n in steps}), 1)
        self._save()
        return replace(student, steps=steps[student.name]) if student.name in steps else None

    def _save(self) -> None:
        self.ledger.set_section(SECTION, {"fingerprint": self.key, "plan": self.plan.to_json()})
