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
    cfg: EvalConfig,
    ref: ModelRef,
    mode: str,
    splits: Splits,
    model_dir: Path | None,
    progress: bool,
    teacher: ModelRef | None = None,
) -> EvalResult:
    """Train on the train split, score on the eval split, and save the trained model to `model_dir` when given.

    `finetune`: a task head on the encoder (STS-B: a cross-encoder); `biencoder` (STS-B): the sentence
    embedding itself, with a cosine loss on the pairs, scored like a zero-shot embedder. With a `teacher`
    (finetune only), its outputs on the train rows are soft targets beside the gold ones."""
    from studentpack.tasks import biencoder, finetune, sst2, stsb
    from studentpack.tasks.soft_targets import soft_targets

    assert ref.path is not None and splits.train is not None
    settings = finetune.TrainSettings(
        cfg.epochs, cfg.lr, cfg.train_batch_size, cfg.warmup, cfg.weight_decay, seed=cfg.seed
    )
    train = splits.train
    soft = None
    if mode == "biencoder":
        model = biencoder.build(ref.path, cfg.device, cfg.max_length, cfg.seed, cfg.allow_pickle)
        log = biencoder.train(model, train.first, train.second, train.scores, settings, progress)
    else:
        labels = ["similarity"] if cfg.task == "stsb" else sst2.LABELS
        soft = None if teacher is None else soft_targets(cfg, teacher, labels, train, progress)
        model = finetune.build(ref.path, labels, cfg.device, cfg.max_length, cfg.seed, cfg.allow_pickle)
        if cfg.task == "stsb":
            log = finetune.train(model, train.first, train.scores, settings, train.second, progress, soft)
        else:
            log = finetune.train(model, train.texts, train.labels, settings, None, progress, soft)
    before = model.truncated
    if mode == "biencoder":
        fractions = stsb.zeroshot(model, splits.eval, cfg.batch_size, progress)
    elif cfg.task == "stsb":
        fractions = stsb.predict(model, splits.eval, cfg.batch_size, progress)
    else:
        fractions = sst2.predict(model, splits.eval, cfg.batch_size, progress)
    details: dict[str, Any] = {
        "protocol": "bi-encoder (cosine loss)" if mode == "biencoder" else "cross-encoder" if cfg.task == "stsb"
        else "classifier",
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
    }  # fmt: skip
    if soft is not None:
        temperature = {} if cfg.task == "stsb" else {"temperature": soft.temperature}
        details["soft_targets"] = {"teacher": soft.source, "weight": soft.weight, **temperature,
                                   "teacher_seconds": round(soft.seconds, 3)}  # fmt: skip
    result = result_of(cfg, ref, mode, splits, fractions, details, model.truncated - before, model.max_length)
    if model_dir is not None:
        _save_finetuned(model, ref, model_dir, cfg, result, mode)
        result.details["saved_model"] = str(model_dir)
    return result


def _save_finetuned(model: Any, ref: ModelRef, model_dir: Path, cfg: EvalConfig, result: EvalResult, mode: str) -> None:
    """The task model as a standard HF sequence-classification directory, or (bi-encoder) a sentence
    embedder laid out like its source, plus studentpack.json."""
    from studentpack.ground.provenance import package_versions
    from studentpack.model import adapter

    manifest = {
        "format": "studentpack.finetune/1",
        "kind": "finetuned" if mode == "finetune" else "finetuned-embedder",
        "task": cfg.task,
        "labels": model.labels,
        "protocol": result.details["protocol"],
        "source_model": {"path": ref.display, "sha256": result.details.get("model_sha256")},
        "max_length": model.max_length,
        "eval": {"metric": result.metric, "value": result.value, "n": result.n, "data": result.data},
        "train": {k: result.details[k] for k in ("train_n", "train_data", "epochs", "seed", "lr", "steps")},
        "versions": package_versions(),
    }
    try:
        with atomic.atomic_dir(model_dir, overwrite=cfg.overwrite) as tmp:
            if mode == "biencoder":
                from studentpack.tasks import biencoder

                assert ref.path is not None
                biencoder.save(model, ref.path, tmp)
            else:
                adapter.save_pretrained(model.model, model.tokenizer, tmp)
            atomic.write_json(tmp / "studentpack.json", manifest)
    except FileExistsError as exc:
        raise UserError(f"{model_dir} already exists; pass --overwrite to replace it") from exc
