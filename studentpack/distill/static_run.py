"""`studentpack distill --method static`: the checks, the run directory and the manifest of a static student.

The run directory is laid out as for the other methods (distill_config.json, inputs.json, log.jsonl,
student/ with studentpack.json), but student/ is a Model2Vec directory (studentpack.model.static_format),
written complete or not at all. Only the settings below apply; the transformer student's (layers,
layer maps, transfers, optimiser, checkpoints) are refused when given, so nobody believes they took effect.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studentpack.config import to_dict
from studentpack.distill.config import DistillConfig
from studentpack.ground import atomic
from studentpack.ground.errors import UserError
from studentpack.text.corpus import Corpus
from studentpack.text.sources import ModelSource

if TYPE_CHECKING:  # rundir imports torch (checkpoints); the settings checks run without it
    from studentpack.distill.rundir import RunDir

FORMAT = "studentpack.distill/1"
# settings a static run reads; any other key given for it (flag, --set or config file) is an error
STATIC_KEYS = frozenset({"method", "teacher", "corpus", "static_dim", "static_sif", "static_steps", "static_lr",
                         "static_batch_size", "max_length", "split_sentences", "seed", "device",
                         "threads"})  # fmt: skip


def refuse_other_settings(data: dict[str, Any]) -> None:
    """One line naming the first setting given that a static student has no use for."""
    unused = sorted(set(data) - STATIC_KEYS)
    if unused:
        first, value = unused[0], data[unused[0]]
        name = f"{first}_{next(iter(value))}" if isinstance(value, dict) and value else first
        flag = "--" + name.replace("_", "-")
        raise UserError(
            f"--method static does not use {flag} ({', '.join(unused)} given); it takes --teacher, --corpus, "
            "--static-dim, --static-sif, --static-steps, --max-length, --split-sentences, --seed, --device, --threads"
        )


def check_numbers(config: DistillConfig) -> None:
    checks = [
        (config.static_dim >= 1, f"--static-dim must be at least 1 (got {config.static_dim})"),
        (0 <= config.static_sif < 1, f"--static-sif must be in [0, 1) (got {config.static_sif}; 0 turns SIF off)"),
        (config.static_steps >= 0, f"--static-steps must be >= 0 (got {config.static_steps}; 0: plain distillation)"),
        (config.static_lr > 0, "static_lr must be positive"),
        (config.static_batch_size >= 1, "static_batch_size must be at least 1"),
        (config.max_length >= 8, "--max-length must be at least 8"),
        (config.threads is None or config.threads >= 1, "--threads must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def default_out(config: DistillConfig) -> Path:
    return Path("runs") / f"static-d{config.static_dim}"


@dataclass(frozen=True)
class StaticPlan:
    config: DistillConfig
    teacher: ModelSource
    teacher_config: dict[str, Any]
    corpus: Corpus | None  # read only when the table is trained
    device: str


def plan_static(config: DistillConfig) -> StaticPlan:
    """Every check that needs no model loaded: a mistake surfaces here, before --out is touched."""
    from studentpack.ground.cuda import require_torch_cuda
    from studentpack.model.adapter import check_encoder_dir
    from studentpack.text.corpus import load_corpus
    from studentpack.text.sources import resolve_model

    check_numbers(config)
    teacher = resolve_model(config.teacher, "teacher")
    teacher_config = check_encoder_dir(teacher.path, allow_pickle=False, role="teacher")  # safetensors only
    corpus = load_corpus(config.corpus) if config.static_steps else None
    require_torch_cuda(config.device, "--device")
    device = config.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return StaticPlan(config, teacher, teacher_config, corpus, device)


def run_static(plan: StaticPlan, run_dir: RunDir, progress: bool = True) -> dict[str, Any]:
    """Distil (and train, with static_steps > 0) the table; write the run; return the manifest."""
    import torch

    from studentpack.distill.rundir import MANIFEST, clear, write_config, write_inputs
    from studentpack.distill.static import distil_vocabulary
    from studentpack.ground.provenance import hash_directory, machine, package_versions
    from studentpack.model.static_format import save_static
    from studentpack.text.corpus import split_sentences

    config, teacher, teacher_config, corpus = plan.config, plan.teacher, plan.teacher_config, plan.corpus
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    teacher_sha = hash_directory(teacher.path)
    clear(run_dir)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)
    write_inputs(run_dir, {"teacher_sha256": teacher_sha, "corpus_sha256": corpus.sha256 if corpus else ""})

    started = time.perf_counter()
    table, tokenizer, model = distil_vocabulary(
        teacher.path, config.static_dim, config.static_sif, plan.device, progress
    )
    vocabulary_seconds = time.perf_counter() - started
    rows, training = table.rows, None
    if corpus is not None:
        from studentpack.distill.static_train import train_table

        texts = split_sentences(corpus.texts) if config.split_sentences else corpus.texts
        trained = train_table(table, model, tokenizer, texts, config.static_steps, config.static_lr,
                              config.static_batch_size, config.max_length, config.seed, progress)  # fmt: skip
        rows = trained.rows
        log = "".join(json.dumps({"step": i + 1, "loss": loss}) + "\n" for i, loss in enumerate(trained.losses))
        atomic.write_text(run_dir.log, log)
        training = {"lines": trained.lines, "tokens": trained.tokens, "steps": config.static_steps,
                    "initial_loss": trained.initial_loss, "final_loss": trained.final_loss,
                    "loss": "1 - cosine(mean of token rows, teacher's centred, projected mean embedding)",
                    "teacher_seconds": trained.teacher_seconds, "train_seconds": trained.train_seconds}  # fmt: skip
    seconds = time.perf_counter() - started
    manifest = {
        "format": FORMAT,
        "teacher": {"name": teacher.name, "origin": teacher.origin, "path": str(teacher.path), "sha256": teacher_sha,
                    "model_type": teacher_config.get("model_type"),
                    "layers": teacher_config.get("num_hidden_layers"), "hidden": teacher_config.get("hidden_size")},
        "student": {"kind": "static", "layers": 0, "hidden": int(rows.shape[1]), "vocabulary": int(rows.shape[0]),
                    "parameters": int(rows.size)},
        "method": "static",
        "config": to_dict(config),
        "vocabulary": {"tokens": int(table.kept.sum()), "skipped": int((~table.kept).sum()),
                       "pca_dim": int(rows.shape[1]), "explained_variance": table.explained_variance,
                       "sif": config.static_sif, "seconds": vocabulary_seconds},
        "training": training,
        "corpus": corpus.describe() if corpus else None,
        "steps": config.static_steps,
        "seed": config.seed,
        "distill_seconds": seconds,
        "versions": package_versions(),
        "machine": machine(),
    }  # fmt: skip
    static_config = {"tokenizer_name": teacher.name, "apply_pca": config.static_dim,
                     "sif_coefficient": config.static_sif or None, "pooling": "mean"}  # fmt: skip
    with atomic.atomic_dir(run_dir.student, overwrite=True) as tmp:
        # Model2Vec wants a row per distinct token unless a mapping says which row each id reads; a
        # vocabulary whose ids skip numbers (a token listed twice) gets the identity mapping
        gaps = len(rows) != tokenizer.get_vocab_size(with_added_tokens=True)
        save_static(tmp, rows, tokenizer, static_config, mapping=np.arange(len(rows)) if gaps else None)
        atomic.write_json(tmp / MANIFEST, manifest)
    return manifest
