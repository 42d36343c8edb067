"""One evaluation from an EvalConfig: resolve the model, load the data, score, save the result.

Every model is opened through `studentpack.engines.open_model`, so a PyTorch directory, an ONNX
variant and a served URL are scored by the same task code. Inputs are checked (model path, data
files, columns, labels, output paths) before any model is loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from studentpack.ground.errors import UserError
from studentpack.tasks import report
from studentpack.tasks.finetune_eval import finetune_and_score
from studentpack.tasks.model_ref import ModelRef, is_classifier, resolve, run_of_variant, teacher_ref
from studentpack.tasks.options import SOFT_TEACHER, TRAINING_MODES, EvalConfig
from studentpack.tasks.report import EvalResult
from studentpack.tasks.scoring import score, task_mode
from studentpack.tasks.splits import load_splits


@dataclass(frozen=True)
class Evaluation:
    result: EvalResult
    saved_to: Path | None  # the eval.json written, if any
    notes: list[str] = field(default_factory=list)  # things the user should know (shown after the result)


def evaluate(cfg: EvalConfig, progress: bool = False) -> Evaluation:
    """Check inputs, score, and save the result (eval.json, and the fine-tuned model for finetune)."""
    started, notes = time.perf_counter(), list[str]()
    ref = resolve(cfg.model)
    mode = task_mode(cfg, is_classifier(ref))
    if mode in TRAINING_MODES and ref.kind != "torch":
        raise UserError(f"--mode {mode} needs a PyTorch model directory; {cfg.model} is not one ({ref.kind})")
    eval_path, model_dir = _plan_outputs(cfg, ref, mode, notes)
    if eval_path is not None:
        report.load_existing(eval_path)  # refuse a foreign file there before any work
    splits = load_splits(cfg, mode)
    teacher = teacher_ref(cfg, ref, notes) if cfg.task == "agreement" else _soft_teacher(cfg)

    if cfg.threads and "torch" in (ref.kind, teacher.kind if teacher else ""):
        import torch  # graphs take their thread count when opened; only PyTorch models need torch told

        torch.set_num_threads(cfg.threads)
    if mode in TRAINING_MODES:
        result = finetune_and_score(cfg, ref, mode, splits, model_dir, progress, teacher)
    else:
        result = score(cfg, ref, mode, splits, teacher, progress)
    result.seconds = time.perf_counter() - started
    if eval_path is not None:
        report.save(result, eval_path, ref.key)
    return Evaluation(result, eval_path, notes)


def _soft_teacher(cfg: EvalConfig) -> ModelRef | None:
    """--teacher for --mode finetune, checked before any training: a fine-tuned classifier (a local directory
    is read here; a variant or URL shows its labels when opened)."""
    if not cfg.teacher:
        return None
    teacher = resolve(cfg.teacher, "teacher")
    if teacher.kind == "torch" and not is_classifier(teacher):
        raise UserError(f"--teacher {cfg.teacher} is an embedding model; {SOFT_TEACHER}")
    return teacher


# ---------------------------------------------------------------------------------------------- outputs


def _plan_outputs(cfg: EvalConfig, ref: ModelRef, mode: str, notes: list[str]) -> tuple[Path | None, Path | None]:
    """(eval.json path or None, fine-tuned model directory or None), refusing bad targets up front."""
    if not cfg.save:
        return None, None
    if mode in TRAINING_MODES:
        if cfg.out:
            model_dir = Path(cfg.out).expanduser()
        elif ref.path is None or ref.packaged:
            raise UserError(
                f"--mode {mode} on an installed model needs --out DIR for the fine-tuned model (or --no-save)"
            )
        else:
            model_dir = ref.path.resolve().parent / (cfg.task if mode == "finetune" else f"{cfg.task}-{mode}")
        if model_dir.exists() and not cfg.overwrite:
            raise UserError(f"{model_dir} already exists; pass --overwrite to replace it, or another --out")
        return model_dir.resolve().parent / report.EVAL_FILE, model_dir
    if cfg.out:
        out = Path(cfg.out).expanduser()
        return (out if out.suffix == ".json" else out / report.EVAL_FILE), None
    if ref.path is None or ref.packaged:
        notes.append(f"result not saved ({ref.display} has no run directory); pass --out to save it")
        return None, None
    # one eval.json per run: <run>/student and <run>/onnx/<variant> both write <run>/eval.json
    run_dir = run_of_variant(ref.path, ref.kind)
    return (run_dir or ref.path.resolve().parent) / report.EVAL_FILE, None
