"""Task-specific distillation for `--mode finetune --teacher DIR`: a fine-tuned teacher's outputs on the train
rows become soft targets beside the gold labels (Hinton et al. 2015; DistilBERT and TinyBERT distil this way
at the prediction layer).

The teacher runs once over the train split before training (no gradients, length-sorted batches), so any
model `eval --mode predict` takes can teach: a PyTorch classifier, its ONNX export, or a served URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from studentpack.ground.errors import UserError
from studentpack.tasks.model_ref import ModelRef
from studentpack.tasks.options import SOFT_TEACHER, EvalConfig
from studentpack.tasks.scoring import close_model, open_scored
from studentpack.tasks.sets import LabeledSet, PairSet


@dataclass(frozen=True)
class SoftTargets:
    logits: np.ndarray  # (N_train, C): the teacher's raw outputs, row i for train row i
    weight: float  # share of the loss on the teacher; the rest stays on the gold labels
    temperature: float  # classification only: both sides' logits are divided by it before the softmax
    source: str
    seconds: float


def teacher_logits(
    teacher: ModelRef, labels: list[str], train: LabeledSet | PairSet, opened: Any, batch_size: int, progress: bool
) -> np.ndarray:
    """The teacher's outputs on every train row, (N_train, C); refuses a teacher whose labels differ."""
    taught = list(getattr(opened, "labels", None) or [])
    if not taught:
        raise UserError(f"--teacher {teacher.display} is an embedding model; {SOFT_TEACHER}")
    if len(taught) != len(labels):
        raise UserError(f"--teacher {teacher.display} has {len(taught)} outputs ({', '.join(taught)}); "
                        f"this task needs {len(labels)} ({', '.join(labels)})")  # fmt: skip
    if isinstance(train, PairSet):
        out = opened.predict(train.first, batch_size=batch_size, progress=progress, text_pairs=train.second)
    else:
        out = opened.predict(train.texts, batch_size=batch_size, progress=progress)
    logits = np.asarray(out, dtype=np.float32).reshape(len(train), len(labels))  # (N_train, C)
    if not np.all(np.isfinite(logits)):
        raise UserError(f"--teacher {teacher.display} gave non-finite outputs on the train split")
    return logits


def soft_targets(
    cfg: EvalConfig, teacher: ModelRef, labels: list[str], train: LabeledSet | PairSet, progress: bool
) -> SoftTargets:
    """Open the teacher, run it over the train rows, close it."""
    started = time.perf_counter()
    opened = open_scored(teacher, cfg)
    try:
        logits = teacher_logits(teacher, labels, train, opened, cfg.batch_size, progress)
    finally:
        close_model(opened)
    seconds = time.perf_counter() - started
    return SoftTargets(logits, cfg.soft_weight, cfg.temperature, teacher.display, seconds)


def mixed_loss(
    logits: torch.Tensor, gold_loss: torch.Tensor, soft: SoftTargets, rows: np.ndarray, regression: bool
) -> torch.Tensor:
    """(1 - weight) * gold loss + weight * the loss against the teacher on the same rows.

    Classification: KL(teacher || student) of the temperature-softened distributions, times T^2 so the
    soft gradients keep their size as T grows (Hinton et al.). Regression: MSE to the teacher's output."""
    taught = torch.as_tensor(soft.logits[rows], device=logits.device)  # (B, C)
    if regression:
        teacher_loss = torch.nn.functional.mse_loss(logits.float(), taught)
    else:
        t = soft.temperature
        student_log_probs = torch.log_softmax(logits.float() / t, dim=-1)  # (B, C)
        teacher_log_probs = torch.log_softmax(taught / t, dim=-1)  # (B, C)
        teacher_loss = torch.nn.functional.kl_div(
            student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True
        ) * (t * t)
    return (1.0 - soft.weight) * gold_loss + soft.weight * teacher_loss
