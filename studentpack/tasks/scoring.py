"""Scoring an evaluation's models on its data: open them, run the task, and build the EvalResult."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from studentpack.ground.errors import UserError
from studentpack.tasks.model_ref import ModelRef
from studentpack.tasks.options import MAX_PAIRWISE_TEXTS, MODES, EvalConfig
from studentpack.tasks.report import EvalResult, scaled
from studentpack.tasks.splits import Splits


def task_mode(cfg: EvalConfig, classifier: bool) -> str:
    """The mode to score in: a classifier by its own predictions, else --mode or the task's first mode."""
    if classifier:
        if cfg.mode not in (None, "predict"):
            raise UserError(f"{cfg.model} is a fine-tuned classifier; score it with --mode predict (the default)")
        if "predict" not in MODES[cfg.task]:
            raise UserError(f"{cfg.model} is a fine-tuned classifier; {cfg.task} needs an embedding model")
        return "predict"
    if cfg.mode == "predict":
        raise UserError(f"--mode predict scores a fine-tuned classifier; {cfg.model} is an embedding model")
    return cfg.mode or MODES[cfg.task][0]


def open_scored(ref: ModelRef, cfg: EvalConfig) -> Any:
    from studentpack.engines import open_model

    extra = {"allow_pickle": True} if cfg.allow_pickle else {}
    return open_model(ref.spec, device=cfg.device, max_length=cfg.max_length, **extra)


def score(cfg: EvalConfig, ref: ModelRef, mode: str, splits: Splits, teacher: ModelRef | None, progress: bool) -> Any:
    with contextlib.ExitStack() as stack:
        model = open_scored(ref, cfg)
        stack.callback(close_model, model)
        teacher_model = None
        if cfg.task == "agreement":
            assert teacher is not None
            teacher_model = open_scored(teacher, cfg)
            stack.callback(close_model, teacher_model)
        return _score_open(cfg, ref, mode, splits, teacher, model, teacher_model, progress)


def close_model(model: Any) -> None:
    """Served models hold an HTTP connection pool; local ones have nothing to release."""
    close = getattr(model, "close", None)
    if callable(close):
        close()


def _score_open(
    cfg: EvalConfig,
    ref: ModelRef,
    mode: str,
    splits: Splits,
    teacher: ModelRef | None,
    model: Any,
    teacher_model: Any,
    progress: bool,
) -> Any:
    from studentpack.tasks import agreement, sst2, stsb

    if mode != "predict" and getattr(model, "labels", None):
        mode = task_mode(cfg, classifier=True)  # a URL or variant that turned out to be a classifier
    before = model.truncated
    details: dict[str, Any] = {}
    fractions: Mapping[str, float | None]
    if cfg.task == "stsb":
        fractions = (stsb.predict if mode == "predict" else stsb.zeroshot)(model, splits.eval, cfg.batch_size, progress)
    elif cfg.task == "sst2" and mode == "predict":
        fractions = sst2.predict(model, splits.eval, cfg.batch_size, progress)
    elif cfg.task == "sst2":
        assert splits.train is not None
        fractions, details = sst2.probe(model, splits.train, splits.eval, cfg.probe_c, cfg.batch_size, progress)
        details |= {"train_n": len(splits.train), "train_data": splits.train_source, "seed": cfg.seed}
    else:
        assert teacher is not None
        fractions, details = agreement.agreement(
            model, teacher_model, splits.eval, cfg.batch_size, progress, MAX_PAIRWISE_TEXTS
        )
        details |= {"teacher": teacher.display}
    truncated = model.truncated - before - details.get("train_truncated", 0)
    if ref.kind == "url":  # what the server says it serves: reports join results to files by this hash
        details |= {"served": {"url": ref.spec, **getattr(model, "served_info", {})}}
        if getattr(model, "sha256", None):
            details["model_sha256"] = model.sha256
    return result_of(cfg, ref, mode, splits, fractions, details, truncated, model.max_length)


def result_of(
    cfg: EvalConfig,
    ref: ModelRef,
    mode: str,
    splits: Splits,
    fractions: Mapping[str, float | None],
    details: dict[str, Any],
    truncated: int,
    max_length: int,
) -> EvalResult:
    metric = next(iter(fractions))
    metrics = {name: scaled(value) for name, value in fractions.items()}
    if ref.path is not None and ref.kind != "url":
        from studentpack.ground.provenance import hash_directory

        details = {**details, "model_sha256": hash_directory(ref.path)}
    return EvalResult(
        task=cfg.task,
        mode=mode,
        metric=metric,
        value=metrics[metric],
        n=len(splits.eval),
        model=ref.display,
        data=splits.eval_source,
        seconds=0.0,
        truncated=truncated,
        max_length=max_length,
        metrics=metrics,
        details=details,
    )
