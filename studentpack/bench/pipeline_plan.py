"""The pipeline's units in running order, each with its estimated seconds on this machine, and the budget plan.

Estimates are the cost model's reference seconds (bench/budget.py) times the calibration factor, except
load tests, whose windows are fixed in seconds. The same function prices a candidate plan while the
budget is being allocated and gives the progress line its first estimate of the time left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from studentpack.bench import budget as B
from studentpack.bench.pipeline_config import STATIC, PipelineConfig, StudentPlan

TEACHER = "teacher"
SERVED = "served"  # the stand-in variant name of a model's served variant before export picks it
_CHARS_PER_ROW = 484  # the embedded corpus: 489k characters packed into 1,010 rows of up to 128 tokens


def student_shape(student: StudentPlan, mapping: dict[str, Any]) -> str:
    """What decides a model's speed: its layers and widths (not its weights, nor how it was trained)."""
    shape = {**(mapping.get("student") or {}), "layers": student.layers, "hidden": student.hidden}
    return repr(sorted(shape.items()))


def sharing_shape(cfg: PipelineConfig, students: list[StudentPlan], mappings: dict[str, dict[str, Any]]) -> set[str]:
    """Students that take the served variant of an earlier student of the same shape, without a trial."""
    if cfg.serve_variants != "fastest":
        return set()
    seen: set[str] = set()
    shared = set()
    for s in students:
        if s.static:
            continue  # never exported
        shape = student_shape(s, mappings[s.name])
        if shape in seen:
            shared.add(s.name)
        seen.add(shape)
    return shared


def served_names(cfg: PipelineConfig, runs: list[str], static_runs: list[str]) -> list[str]:
    """Served model names as planned: the teacher in PyTorch, one (or every) variant per exported run, then
    the static students, served as they are."""
    variants = cfg.export_variants if cfg.serve_variants == "all" else (SERVED,)
    names = [f"{TEACHER}-torch"] + [f"{run}-{v}" for run in runs for v in variants]
    if cfg.serve_student_torch:
        names += [f"{run}-torch" for run in runs if run != TEACHER]
    return names + [f"{run}-{STATIC}" for run in static_runs]


def wanted_steps(mapping: dict[str, Any]) -> int:
    """The steps a student's distill config asks for. A static table's are its training steps, at least 1: the
    plan counts every student it keeps in steps, and a table is never cut (it is not budgeted)."""
    if mapping.get("method") == STATIC:
        return max(1, int(mapping.get("static_steps", 300)))
    return int(mapping.get("steps", 300))


def depth(student: StudentPlan) -> float:
    """What one evaluation of the student costs against a 3-layer transformer's."""
    return B.STATIC_DEPTH if student.static else student.layers / 3


def unit_estimates(
    cfg: PipelineConfig,
    students: list[StudentPlan],
    mappings: dict[str, dict[str, Any]],
    tasks: list[str],
    corpus_chars: int,
    factor: float,
) -> dict[str, float]:
    """unit -> estimated seconds here, in the order the pipeline runs them."""
    gpu = cfg.device.startswith("cuda")
    scale = factor / (8 if gpu else 1)
    rows = max(1, corpus_chars // _CHARS_PER_ROW)
    est: dict[str, float] = {}
    for s in students:
        m = mappings[s.name]
        if s.static:
            est[f"distill:{s.name}"] = B.static_distill_seconds(int(m.get("static_steps", 300)), rows) * scale
            continue
        steps, batch = int(m.get("steps", 300)), int(m.get("batch_size", 16))
        per_row = batch / 16 * int(m.get("max_length", 128)) / 128  # the model's rows are 16 x 128 tokens
        cached = steps * batch / rows >= 1.5 and int(m.get("teacher_cache_mb", 2048)) > 0
        seconds = B.distill_seconds(s.method, s.layers, steps, rows, int(m.get("fit_head_steps", 300)), cached)
        est[f"distill:{s.name}"] = B.DISTILL_START_S * scale + (seconds - B.DISTILL_START_S) * per_row * scale
    for s in students if cfg.eval.local else []:
        for task in tasks:
            est[f"eval:{s.name}:{task}"] = B.EVAL_S.get(task, 15.0) * depth(s) * scale
    runs = ([TEACHER] if cfg.export_teacher else []) + [s.name for s in students if not s.static]
    layers = {s.name: s.layers for s in students} | {TEACHER: 6}
    depths = {s.name: depth(s) for s in students} | {TEACHER: 2.0}
    shared = sharing_shape(cfg, students, mappings)
    for run in runs:
        variants = cfg.export_variants[:2] if run in shared else cfg.export_variants  # fp32 and the shared choice
        est[f"export:{run}"] = B.export_seconds(variants, layers[run], run not in shared) * scale
    names = served_names(cfg, runs, [s.name for s in students if s.static])
    est["serve"] = (B.SERVE_START_S + B.SERVE_S_PER_MODEL * len(names)) * scale
    load = cfg.loadtest
    window = len(load.users) * (load.warmup_s + load.duration_s + B.LOADTEST_OVERHEAD_S)  # fixed: not scaled
    for name in names:
        est[f"loadtest:{name}"] = window
        # the teacher is served in PyTorch even when it is not exported, so it is not always in runs
        run = next(r for r in sorted(depths, key=len, reverse=True) if name.startswith(f"{r}-"))
        torch = B.SERVED_TORCH_SLOWER if name.endswith("-torch") else 1.0
        for task in tasks:
            scaled = B.SERVED_EVAL_S.get(task, 5.0) * (1.0 if task == "agreement" else depths[run]) * torch
            est[f"served-eval:{name}:{task}"] = scaled * scale
    est["report"] = B.REPORT_S * scale
    return est


def plan_budget(
    cfg: PipelineConfig,
    mapping_of: Callable[[StudentPlan], dict[str, Any]],
    tasks: list[str],
    corpus_chars: int,
    calibration: B.Calibration | None,
) -> B.BudgetPlan:
    """Steps per student within cfg.budget_minutes (all wanted steps when there is no budget)."""
    factor = calibration.factor if calibration else 1.0
    by_name = {s.name: s for s in cfg.students}
    wanted = [B.Wanted(s.name, wanted_steps(mapping_of(s)), s.budgeted, s.min_steps) for s in cfg.students]

    def cost(steps: dict[str, int]) -> float:
        students = [replace(by_name[name], steps=n) for name, n in steps.items()]
        mappings = {s.name: {**mapping_of(s), "steps": s.steps} for s in students}
        return sum(unit_estimates(cfg, students, mappings, tasks, corpus_chars, factor).values())

    budget_s = cfg.budget_minutes * 60 if cfg.budget_minutes is not None else None
    steps, dropped, share = B.allocate(wanted, cost, budget_s * B.PLAN_MARGIN if budget_s is not None else None)
    reasons = []
    if budget_s is None:
        reasons.append("no budget: every student gets its steps")
    else:
        reasons.append(f"budget {cfg.budget_minutes:g} min; this machine runs the teacher {factor:.2f}x as long as "
                       f"the reference ({B.REFERENCE_CLASS})" if calibration else "no calibration")  # fmt: skip
        cut = [w for w in wanted if w.budgeted and w.name in steps and steps[w.name] < w.steps]
        if cut:
            reasons.append("budgeted students cut to " + ", ".join(f"{w.name} {steps[w.name]}/{w.steps} steps"
                                                                 for w in cut))  # fmt: skip
        if dropped:
            reasons.append("dropped, even their minimum steps did not fit: " + ", ".join(dropped))
        if cost(steps) > budget_s:
            reasons.append(f"the fixed students alone are estimated at {cost(steps) / 60:.1f} min, over the budget")
    return B.BudgetPlan(
        budget_s=budget_s,
        calibration=({**vars(calibration), "factor": round(factor, 3)} if calibration else None),
        steps=steps,
        dropped=dropped,
        share=share,
        estimate_s=round(cost(steps), 1),
        reasons=reasons,
    )
