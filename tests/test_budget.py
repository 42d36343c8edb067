"""The pipeline's time budget: the allocation of steps under a cost model, and the plan's bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studentpack.bench.budget import Calibration, Wanted, allocate, distill_seconds
from studentpack.bench.budget_keeper import BudgetKeeper
from studentpack.bench.pipeline_config import PipelineConfig, StudentPlan
from studentpack.bench.stages import Clock, Ledger
from studentpack.config import build

PER_STEP = {"fixed": 1.0, "b1": 0.5, "b2": 0.5}


def _cost(steps: dict[str, int]) -> float:
    return 100.0 + sum(PER_STEP[name] * n for name, n in steps.items()) + 20.0 * len(steps)  # 20 s per student kept


WANTED = [Wanted("fixed", 300, False, 1), Wanted("b1", 300, True, 100), Wanted("b2", 300, True, 40)]


def test_everything_fits_within_a_generous_budget() -> None:
    steps, dropped, share = allocate(WANTED, _cost, budget_s=10_000)
    assert steps == {"fixed": 300, "b1": 300, "b2": 300} and dropped == [] and share == 1.0


def test_budgeted_students_share_one_fraction_and_the_fixed_one_is_never_cut() -> None:
    # fixed: 100 + 300 + 60 = 460 s; the rest (0.5 s a step each) must fit in 640 - 460 = 180 s: 180 steps in all
    steps, dropped, share = allocate(WANTED, _cost, budget_s=640)
    assert steps["fixed"] == 300 and dropped == []
    assert steps["b1"] == steps["b2"] == 180 and share == pytest.approx(0.6, abs=0.01)
    assert _cost(steps) <= 640


def test_the_minimum_holds_and_the_last_budgeted_student_is_dropped_first() -> None:
    # a share of 0.2 gives b2 60 steps, and b1 its minimum, 100 (more than 0.2 x 300): 460 + 50 + 30 = 540 s
    steps, dropped, _ = allocate(WANTED, _cost, budget_s=540)
    assert steps == {"fixed": 300, "b1": 100, "b2": 60}
    steps, dropped, _ = allocate(WANTED, _cost, budget_s=500)  # b2 does not fit even at 40 steps
    assert dropped == ["b2"] and steps["b1"] >= 100 and _cost(steps) <= 500
    steps, dropped, _ = allocate(WANTED, _cost, budget_s=430)  # the fixed student alone: 420 s
    assert dropped == ["b2", "b1"] and steps == {"fixed": 300}


def test_fixed_students_run_even_when_they_alone_overrun() -> None:
    steps, dropped, share = allocate(WANTED, _cost, budget_s=10)
    assert steps == {"fixed": 300} and dropped == ["b2", "b1"] and share == 1.0


def test_no_budget_means_every_wanted_step() -> None:
    assert allocate(WANTED, _cost, budget_s=None)[0] == {"fixed": 300, "b1": 300, "b2": 300}


def test_a_slower_machine_scales_the_factor_and_the_cached_run_is_cheaper() -> None:
    assert Calibration(660.0, "AVX2", 2, reference_ms=330.0).factor == 2.0
    cached = distill_seconds("hs", 3, 300, 1000, 0, cached=True)
    uncached = distill_seconds("hs", 3, 300, 1000, 0, cached=False)
    assert cached < uncached
    assert distill_seconds("od", 3, 100, 1000, 60, cached=True) > distill_seconds("od", 3, 100, 1000, 0, cached=True)


def _keeper(tmp_path: Path, budget_minutes: float) -> tuple[BudgetKeeper, list[StudentPlan]]:
    students = [
        {"name": "fixed", "method": "hs", "layers": 3, "steps": 150},
        {"name": "later", "method": "hs", "layers": 2, "steps": 300, "budgeted": True, "min_steps": 50},
        {"name": "last", "method": "mha", "layers": 3, "steps": 300, "budgeted": True, "min_steps": 50},
    ]
    cfg = build(PipelineConfig, {"students": students, "budget_minutes": budget_minutes, "variants": ["fp32"]})
    mappings = {s.name: {**cfg.distill_mapping(s), "steps": s.steps} for s in cfg.students}
    keeper = BudgetKeeper(cfg, Ledger(tmp_path / "pipeline.json"), mappings, ["agreement"], 489_000, "teacher")
    keeper.start(force=False, calibrate=lambda: Calibration(330.0, "test", 2))
    return keeper, keeper.students()


def test_a_slow_start_takes_steps_from_the_students_still_to_come(tmp_path: Path) -> None:
    keeper, planned = _keeper(tmp_path, budget_minutes=12.0)
    assert keeper.plan.steps == {"fixed": 150, "later": 300, "last": 300}  # the timing said: all of it fits

    clock = Clock(keeper.estimates(planned), say=lambda line: None)
    fixed_estimate = clock.estimates["distill:fixed"]
    clock.actual["distill:fixed"] = 1.5 * fixed_estimate  # the first student ran 1.5 times its estimate
    clock.started -= 1.5 * fixed_estimate
    later = keeper.revise(planned[1], [planned[0]], clock)
    assert later is not None and 50 <= later.steps < 300
    assert keeper.plan.steps["later"] == later.steps and keeper.plan.steps["fixed"] == 150
    assert any("later re-planned when its turn came: 300 ->" in r for r in keeper.plan.reasons)
    stored = json.loads((tmp_path / "pipeline.json").read_text())["budget"]["plan"]
    assert stored["steps"] == keeper.plan.steps  # written as it is decided


def test_a_student_the_start_left_out_is_weighed_again_when_its_turn_comes(tmp_path: Path) -> None:
    keeper, planned = _keeper(tmp_path, budget_minutes=6.0)
    assert keeper.plan.dropped == ["last"]  # the timing at the start: no room for it
    clock = Clock(keeper.estimates(planned), say=lambda line: None)
    for unit in ("distill:fixed", "distill:later"):  # both ran in a third of their estimates
        clock.actual[unit] = clock.estimates[unit] / 3
    clock.started -= sum(clock.actual.values())
    last = keeper.revise(StudentPlan("last", "mha", 3, steps=300, budgeted=True, min_steps=50), planned[:2], clock)
    assert last is not None and last.steps >= 50 and keeper.plan.dropped == []


def test_a_re_run_reuses_the_decisions_and_revises_nothing(tmp_path: Path) -> None:
    keeper, planned = _keeper(tmp_path, budget_minutes=12.0)
    clock = Clock(keeper.estimates(planned), say=lambda line: None)
    clock.started -= 10_000  # far over the budget: "later" would be dropped now
    assert keeper.revise(planned[1], [planned[0]], clock) is None and "later" in keeper.plan.dropped
    again, _ = _keeper(tmp_path, budget_minutes=12.0)
    assert again.reused and again.plan.steps == keeper.plan.steps
    assert again.revise(planned[0], [], clock) == planned[0]  # a reused plan is not revised
    assert again.revise(planned[2], [], clock) is None and again.plan.dropped == keeper.plan.dropped
