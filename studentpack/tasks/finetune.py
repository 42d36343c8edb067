"""Fine-tune an encoder + task head end to end (SST-2 classification, STS-B regression), seeded."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from studentpack.engines.pytorch import TorchEncoder, torch_device
from studentpack.model import adapter
from studentpack.tasks.soft_targets import SoftTargets, mixed_loss


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 1
    lr: float = 5e-5
    batch_size: int = 32
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class TrainLog:
    steps: int
    examples: int
    first_loss: float
    final_loss: float  # mean over the last 10% of steps
    seconds: float
    truncated: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build(
    path: Path,
    labels: list[str],
    device: str,
    max_length: int,
    seed: int,
    allow_pickle: bool = False,
) -> TorchEncoder:
    """Encoder dir + fresh head (1 label = regression), wrapped for tokenising and scoring."""
    seed_everything(seed)  # the head's initial weights come from torch's global RNG
    model = adapter.build_sequence_classifier(path, len(labels), labels, allow_pickle=allow_pickle)
    tokenizer = adapter.load_tokenizer(path)
    return TorchEncoder(model, tokenizer, str(path), torch_device(device), max_length, labels)


def train(
    encoder: TorchEncoder,
    texts: Sequence[str],
    targets: np.ndarray,
    settings: TrainSettings,
    text_pairs: Sequence[str] | None = None,
    progress: bool = False,
    soft: SoftTargets | None = None,
) -> TrainLog:
    """AdamW with linear warm-up and decay over shuffled batches; cross-entropy, or MSE for 1 label, mixed
    with the loss against a teacher's outputs when `soft` is given."""
    model = encoder.model
    regression = len(encoder.labels) == 1
    if regression:  # start the head at the mean target: no early steps spent learning the bias (MSE 8.9 -> 2)
        with torch.no_grad():
            adapter.head_output_layer(model).bias.fill_(float(np.mean(targets)))
    truncated_before = encoder.truncated
    losses, seconds = optimise(
        model,
        len(texts),
        settings,
        lambda rows: _step(encoder, texts, text_pairs, targets, rows, regression, soft),
        progress,
        "finetune",
    )
    return summarise(losses, seconds, len(texts) * settings.epochs, encoder.truncated - truncated_before)


def optimise(
    module: torch.nn.Module,
    rows: int,
    settings: TrainSettings,
    loss_of: Callable[[np.ndarray], torch.Tensor],
    progress: bool,
    desc: str,
) -> tuple[list[float], float]:
    """AdamW with linear warm-up and decay, `settings.epochs` passes over `rows` examples in seeded shuffled
    batches; `loss_of(batch row indices)` gives each batch's loss. The per-step losses and the seconds."""
    per_epoch = math.ceil(rows / settings.batch_size)
    total = per_epoch * settings.epochs
    optimizer = torch.optim.AdamW(param_groups(module, settings.weight_decay), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(total, settings.warmup))
    seed_everything(settings.seed)  # dropout masks
    order_rng = np.random.default_rng(settings.seed)  # batch order
    started, losses = time.perf_counter(), []
    module.train()
    bar = tqdm(total=total, disable=not progress, desc=desc, unit="step")
    try:
        for _epoch in range(settings.epochs):
            order = order_rng.permutation(rows)
            for start in range(0, rows, settings.batch_size):
                loss = loss_of(order[start : start + settings.batch_size])
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), settings.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    finally:
        bar.close()
        module.eval()
    return losses, time.perf_counter() - started


def summarise(losses: list[float], seconds: float, examples: int, truncated: int) -> TrainLog:
    tail = losses[-max(1, len(losses) // 10) :]
    return TrainLog(steps=len(losses), examples=examples, first_loss=losses[0], final_loss=float(np.mean(tail)),
                    seconds=seconds, truncated=truncated)  # fmt: skip


def _step(
    encoder: TorchEncoder,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None,
    targets: np.ndarray,
    rows: np.ndarray,
    regression: bool,
    soft: SoftTargets | None,
) -> torch.Tensor:
    firsts = [texts[i] for i in rows]
    seconds = None if text_pairs is None else [text_pairs[i] for i in rows]
    feeds = encoder.tokenize(firsts, seconds)
    logits = encoder.model(**feeds).logits  # (B, C)
    if regression:
        gold = torch.as_tensor(targets[rows], dtype=torch.float32, device=logits.device)  # (B,)
        gold_loss = torch.nn.functional.mse_loss(logits[:, 0].float(), gold)
    else:
        gold_ids = torch.as_tensor(targets[rows], dtype=torch.long, device=logits.device)  # (B,)
        gold_loss = torch.nn.functional.cross_entropy(logits.float(), gold_ids)
    return gold_loss if soft is None else mixed_loss(logits, gold_loss, soft, rows, regression)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights (the usual BERT fine-tuning recipe)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def linear_schedule(total: int, warmup: float) -> Any:
    warm = int(total * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return factor
