"""The data an evaluation scores: its eval split (and train split for probe and fine-tune modes), checked
for its task before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError
from studentpack.tasks import sets
from studentpack.tasks.data import locate, read_table
from studentpack.tasks.options import DEFAULT_AGREEMENT_TEXTS, DEFAULT_PROBE_TRAIN, TRAINING_MODES, EvalConfig
from studentpack.tasks.shipped import EMBEDDED_HELDOUT


@dataclass(frozen=True)
class Splits:
    """The examples an evaluation scores (and trains on), with where each split came from."""

    eval: Any
    train: Any | None
    eval_source: str
    train_source: str | None


def _load_split(cfg: EvalConfig, spec: str, split: str, num_classes: int) -> tuple[Any, str]:
    source = locate(spec, split, cfg.split if split == "eval" else None)
    table = read_table(source, split, cfg.split if split == "eval" else None)
    columns = sets.Columns(cfg.text_column, cfg.pair_column, cfg.label_column)
    if cfg.task == "stsb":
        return sets.stsb_pairs(table, columns), table.source
    if cfg.task == "sst2":
        return sets.sst2_labeled(table, columns, num_classes), table.source
    return sets.plain_texts(table, columns), table.source


def load_splits(cfg: EvalConfig, mode: str) -> Splits:
    if cfg.task == "agreement":
        spec = cfg.data or EMBEDDED_HELDOUT
        texts, source = _load_split(cfg, spec, "eval", 0)
        texts = sets.head(texts, cfg.limit or DEFAULT_AGREEMENT_TEXTS)
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
    dev = sets.head(dev, cfg.limit)
    if mode not in ("probe", *TRAINING_MODES):
        return Splits(dev, None, source, None)
    train_spec = cfg.train or spec
    if not cfg.train and not spec.startswith("hub:") and Path(spec).is_file():
        raise UserError(
            f"{cfg.task} {mode} needs a train split: give --data a directory holding train.* and dev.*, or --train FILE"
        )
    train, train_source = _load_split(cfg, train_spec, "train", 2)
    limit = cfg.train_limit or (DEFAULT_PROBE_TRAIN if mode == "probe" else None)
    return Splits(dev, sets.sample(train, limit, cfg.seed), source, train_source)


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
