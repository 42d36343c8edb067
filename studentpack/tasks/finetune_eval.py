"""`--mode finetune`: train the task model on the train split, score it, and save it as a model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.ground import atomic
from studentpack.ground.errors import UserError
from studentpack.tasks.model_ref import ModelRef
from studentpack.tasks.options import EvalConfig
from studentpack.tasks.report import EvalResult
from studentpack.tasks.scoring import result_of
from studentpack.tasks.splits import Splits


def finetune_and_score(
    cfg: EvalConfig, ref: ModelRef, splits: Splits, model_dir: Path | None, progress: bool
) -> EvalResult:
    """Train on the train split, score on the eval split, and save the task model to `model_dir` when given."""
    from studentpack.tasks import finetune, sst2, stsb

    assert ref.path is not None and splits.train is not None
    labels = ["similarity"] if cfg.task == "stsb" else sst2.LABELS
    settings = finetune.TrainSettings(
        cfg.epochs, cfg.lr, cfg.train_batch_size, cfg.warmup, cfg.weight_decay, seed=cfg.seed
    )
    model = finetune.build(ref.path, labels, cfg.device, cfg.max_length, cfg.seed, cfg.allow_pickle)
    train = splits.train
    if cfg.task == "stsb":
        log = finetune.train(model, train.first, train.scores, settings, train.second, progress)
    else:
        log = finetune.train(model, train.texts, train.labels, settings, None, progress)
    before = model.truncated
    if cfg.task == "stsb":
        fractions = stsb.predict(model, splits.eval, cfg.batch_size, progress)
    else:
        fractions = sst2.predict(model, splits.eval, cfg.batch_size, progress)
    details: dict[str, Any] = {
        "train_n": len(train),
        "train_data": splits.train_source,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "lr": cfg.lr,
        "train_batch_size": cfg.train_batch_size,
        "warmup": cfg.warmup,
        "weight_decay": cfg.weight_decay,
        "steps": log.steps,
        "first_loss": round(log.first_loss, 6),
        "final_loss": round(log.final_loss, 6),
        "train_seconds": round(log.seconds, 3),
        "train_truncated": log.truncated,
    }
    result = result_of(cfg, ref, "finetune", splits, fractions, details, model.truncated - before, model.max_length)
    if model_dir is not None:
        _save_finetuned(model, ref, model_dir, cfg, result)
        result.details["saved_model"] = str(model_dir)
    return result


def _save_finetuned(model: Any, ref: ModelRef, model_dir: Path, cfg: EvalConfig, result: EvalResult) -> None:
    """The task model as a standard HF sequence-classification directory plus studentpack.json."""
    from studentpack.ground.provenance import package_versions
    from studentpack.model import adapter

    manifest = {
        "format": "studentpack.finetune/1",
        "kind": "finetuned",
        "task": cfg.task,
        "labels": model.labels,
        "source_model": {"path": ref.display, "sha256": result.details.get("model_sha256")},
        "max_length": model.max_length,
        "eval": {"metric": result.metric, "value": result.value, "n": result.n, "data": result.data},
        "train": {k: result.details[k] for k in ("train_n", "train_data", "epochs", "seed", "lr", "steps")},
        "versions": package_versions(),
    }
    try:
        with atomic.atomic_dir(model_dir, overwrite=cfg.overwrite) as tmp:
            adapter.save_pretrained(model.model, model.tokenizer, tmp)
            atomic.write_json(tmp / "studentpack.json", manifest)
    except FileExistsError as exc:
        raise UserError(f"{model_dir} already exists; pass --overwrite to replace it") from exc
