"""Task example sets read from a data table: STS-B pairs, SST-2 labelled sentences, agreement texts.

Each checks its table's values (a score in range, a known label, text where text belongs) and says
which file and line is wrong; `head` and `sample` take the subsets an evaluation runs on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studentpack.ground.errors import UserError
from studentpack.tasks.data import Table

STSB_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class Columns:
    """Column names chosen by the user; None means the task's default candidates."""

    text: str | None = None
    pair: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class PairSet:
    """Sentence pairs with a gold similarity score (STS-B)."""

    source: str
    first: list[str]
    second: list[str]
    scores: np.ndarray  # (N,) float64

    def __len__(self) -> int:
        return len(self.first)

    def take(self, idx: Sequence[int]) -> PairSet:
        return PairSet(self.source, [self.first[i] for i in idx], [self.second[i] for i in idx], self.scores[list(idx)])


@dataclass(frozen=True)
class LabeledSet:
    """Single sentences with an integer class label (SST-2)."""

    source: str
    texts: list[str]
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: Sequence[int]) -> LabeledSet:
        return LabeledSet(self.source, [self.texts[i] for i in idx], self.labels[list(idx)])


@dataclass(frozen=True)
class TextSet:
    """Unlabeled texts (teacher agreement)."""

    source: str
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: Sequence[int]) -> TextSet:
        return TextSet(self.source, [self.texts[i] for i in idx])


def pick_column(table: Table, given: str | None, candidates: Sequence[str], role: str, flag: str) -> str:
    """The column to read: the user's choice, else the first default candidate present."""
    if given is not None:
        if given not in table.columns:
            raise UserError(f"{table.source} has no column {given!r} (columns: {', '.join(table.columns)})")
        return given
    for name in candidates:
        if name in table.columns:
            return name
    raise UserError(
        f"{table.source} has no {role} column ({' or '.join(candidates)}; columns: "
        f"{', '.join(table.columns) or 'none'}); name it with {flag}"
    )


def _text(table: Table, i: int, column: str) -> str:
    value = table.rows[i].get(column)
    if not isinstance(value, str):
        raise UserError(f"{table.where(i)}: {column} is {type(value).__name__}, not text")
    return value


def _nonempty(table: Table) -> None:
    if not table.rows:
        raise UserError(f"{table.source} holds no examples")


def stsb_pairs(table: Table, columns: Columns) -> PairSet:
    """Sentence pairs and 0-5 scores; the score column defaults to `score` (shared TSV) or `label` (GLUE)."""
    _nonempty(table)
    first = pick_column(table, columns.text, ("sentence1",), "first-sentence", "--text-column")
    second = pick_column(table, columns.pair, ("sentence2",), "second-sentence", "--pair-column")
    label = pick_column(table, columns.label, ("score", "label"), "score", "--label-column")
    low, high = STSB_RANGE
    scores = np.empty(len(table.rows), dtype=np.float64)
    for i, row in enumerate(table.rows):
        score = _number(row.get(label))
        if score is None or not low <= score <= high:
            raise UserError(f"{table.where(i)}: score {row.get(label)!r} is not a number in [{low:g}, {high:g}]")
        scores[i] = score
    a = [_text(table, i, first) for i in range(len(table.rows))]
    b = [_text(table, i, second) for i in range(len(table.rows))]
    return PairSet(table.source, a, b, scores)


def sst2_labeled(table: Table, columns: Columns, num_classes: int = 2) -> LabeledSet:
    """Sentences and integer labels in [0, num_classes)."""
    _nonempty(table)
    text = pick_column(table, columns.text, ("sentence", "text"), "text", "--text-column")
    label = pick_column(table, columns.label, ("label",), "label", "--label-column")
    labels = np.empty(len(table.rows), dtype=np.int64)
    for i, row in enumerate(table.rows):
        value = _integer(row.get(label))
        if value is None or not 0 <= value < num_classes:
            allowed = ", ".join(str(c) for c in range(num_classes))
            raise UserError(f"{table.where(i)}: label {row.get(label)!r} is not one of {allowed}")
        labels[i] = value
    return LabeledSet(table.source, [_text(table, i, text) for i in range(len(table.rows))], labels)


def plain_texts(table: Table, columns: Columns) -> TextSet:
    """Texts for agreement: the named column(s), else `text`, `sentence`, or both STS-B sentences."""
    _nonempty(table)
    if columns.text is None and "text" not in table.columns and "sentence" not in table.columns:
        if "sentence1" in table.columns:
            names = ["sentence1"] + (["sentence2"] if "sentence2" in table.columns else [])
        else:
            names = [pick_column(table, None, ("text", "sentence", "sentence1"), "text", "--text-column")]
    else:
        names = [pick_column(table, columns.text, ("text", "sentence"), "text", "--text-column")]
        if columns.pair is not None:
            names.append(pick_column(table, columns.pair, (), "pair", "--pair-column"))
    texts = [_text(table, i, name) for name in names for i in range(len(table.rows))]
    texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))  # unique, in order
    if not texts:
        raise UserError(f"{table.source} holds no non-empty text")
    return TextSet(table.source, texts)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    if number is None or number != int(number):
        return None
    return int(number)


# ---------------------------------------------------------------------------------------------- subsets


def head(data: Any, limit: int | None) -> Any:
    """The first `limit` examples (a stable slice), or all."""
    if limit is None or limit >= len(data):
        return data
    return data.take(range(limit))


def sample(data: Any, limit: int | None, seed: int) -> Any:
    """A seeded random subset of `limit` examples in a seeded random order (train subsets)."""
    if limit is None or limit >= len(data):
        return data
    order = np.random.default_rng(seed).permutation(len(data))[:limit]
    return data.take(sorted(int(i) for i in order))
