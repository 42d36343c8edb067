"""Evaluation data: the shared TSV layout, CSV, JSONL/JSON, plain text and `hub:` datasets.

A data spec is a file (its one split), a directory holding `train.*` and `dev.*` files (the layout
of ../shared/data), or `hub:NAME[:CONFIG]` (`hub:glue/stsb` and `hub:glue/sst2` are shorthands for
the GLUE configs). Every problem with the data is a one-line `UserError` naming file and line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.ground.errors import UserError
from studentpack.text.corpus import read_utf8

SUFFIXES = (".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".txt")
SPLIT_STEMS = {"train": ("train",), "eval": ("dev", "validation", "valid", "test")}
HUB_SPLITS = {"train": "train", "eval": "validation"}
EMBEDDED_HELDOUT = "embedded:heldout"  # general English no shipped distillation corpus contains
EMBEDDED_DOCSTRINGS = "embedded:docstrings"  # the former default: standard-library prose
STSB_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class Columns:
    """Column names chosen by the user; None means the task's default candidates."""

    text: str | None = None
    pair: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Table:
    """Rows of one split as read: `rows[i]` maps column -> value, `lines[i]` says where it came from."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    def where(self, i: int) -> str:
        return f"{self.source} line {self.lines[i]}" if self.lines[i] else f"{self.source} row {i + 1}"


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


# ---------------------------------------------------------------------------------------------- locating


def locate(spec: str, split: str, split_name: str | None = None) -> str:
    """The source of one split ("train" or "eval") of a data spec: a file path or a `hub:` spec."""
    if spec.startswith("hub:") or spec in EMBEDDED_TEXTS:
        return spec
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    if not path.exists():
        raise UserError(f"data not found: {spec}")
    stems = (split_name,) if split_name else SPLIT_STEMS[split]
    for stem in stems:
        for suffix in SUFFIXES:
            if (path / f"{stem}{suffix}").is_file():
                return str(path / f"{stem}{suffix}")
    wanted = " or ".join(f"{s}.*" for s in stems)
    raise UserError(f"data directory {spec} has no {split} split ({wanted} with a suffix of {', '.join(SUFFIXES)})")


def parse_hub(spec: str) -> tuple[str, str | None]:
    """`hub:glue/sst2` -> ("nyu-mll/glue", "sst2"); `hub:NAME[:CONFIG]` -> (NAME, CONFIG)."""
    name = spec.removeprefix("hub:")
    name, _, config = name.partition(":")
    if not name:
        raise UserError(f"hub data spec {spec!r} names no dataset (use hub:NAME[:CONFIG], e.g. hub:glue/stsb)")
    if name.startswith("glue/") and not config and name.count("/") == 1:
        return "nyu-mll/glue", name.split("/", 1)[1]
    return name, config or None


# ---------------------------------------------------------------------------------------------- reading


def read_table(source: str, split: str = "eval", split_name: str | None = None) -> Table:
    """Read every row of one split into a Table (no validation of values yet)."""
    if source.startswith("hub:"):
        return _read_hub(source, split_name or HUB_SPLITS[split])
    if source in EMBEDDED_TEXTS:
        texts = EMBEDDED_TEXTS[source]()
        return Table(source, ["text"], [{"text": t} for t in texts], [0] * len(texts))
    path = Path(source)
    text = read_utf8(path, "data file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(source, text)
    if suffix == ".json":
        return _read_json(source, text)
    if suffix == ".txt":
        pairs = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]
        return Table(source, ["text"], [{"text": t} for _, t in pairs], [n for n, _ in pairs])
    if suffix in (".tsv", ".csv"):
        return _read_delimited(source, text, suffix)
    raise UserError(f"data file {source}: unknown format (use one of {', '.join(SUFFIXES)})")


def _read_delimited(source: str, text: str, suffix: str) -> Table:
    # GLUE TSVs hold unbalanced quotes inside sentences: tabs only, no quoting; CSV follows RFC 4180.
    if suffix == ".tsv":
        reader: Iterator[list[str]] = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        for line, fields in enumerate(reader, start=1):
            if not fields or fields == [""]:
                continue
            if header is None:
                header = [f.strip() for f in fields]
                continue
            if len(fields) != len(header):
                raise UserError(f"{source} line {line} has {len(fields)} fields but the header has {len(header)}")
            rows.append(dict(zip(header, fields, strict=True)))
            lines.append(line)
    except csv.Error as exc:
        raise UserError(f"{source} does not parse as {suffix[1:].upper()}: {exc}") from exc
    if header is None:
        raise UserError(f"data file {source} is empty (no header row)")
    return Table(source, header, rows, lines)


def _read_jsonl(source: str, text: str) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source} line {line} is not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise UserError(f"{source} line {line} is not a JSON object")
        rows.append(obj)
        lines.append(line)
    return Table(source, _columns(rows), rows, lines)


def _read_json(source: str, text: str) -> Table:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UserError(f"{source}: expected a JSON list of objects (or JSON Lines in a .jsonl file)")
    return Table(source, _columns(data), data, [0] * len(data))


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _read_hub(spec: str, split: str) -> Table:
    name, config = parse_hub(spec)
    try:
        import datasets
    except ImportError as exc:
        raise UserError("hub data needs the datasets package: pip install 'studentpack[hub]'") from exc
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # network, unknown name or split: all user-fixable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load {spec} split {split}: {first}") from exc
    columns = list(data.column_names)
    values = [list(data[c]) for c in columns]
    rows = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    return Table(f"{spec}[{split}]", columns, rows, [0] * len(rows))


# ---------------------------------------------------------------------------------------------- tasks


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


# ---------------------------------------------------------------------------------------------- embedded


def heldout_english() -> list[str]:
    """1,000 sentences of general English written for the project (studentpack/data/heldout, Apache-2.0),
    in no shipped distillation corpus: the label-free measure scores students on text they never saw."""
    from importlib import resources

    file = resources.files("studentpack") / "data" / "heldout" / "english.txt"
    if not file.is_file():
        raise UserError("the held-out English texts are missing from this install (studentpack/data/heldout)")
    return [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def embedded_docstrings(limit: int = 1000) -> list[str]:
    """Prose that every CPython install holds and that no embedded distillation corpus uses: docstrings
    of standard-library modules, classes and functions, cut into paragraphs without doctest or code."""
    import importlib
    import inspect

    paragraphs: list[str] = []
    for name in _DOC_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        names = sorted(getattr(module, "__all__", None) or dir(module))
        objects = [module] + [getattr(module, a, None) for a in names if not a.startswith("_")]
        for obj in objects:
            doc = inspect.getdoc(obj) if callable(obj) or inspect.ismodule(obj) else None
            if doc:
                paragraphs.extend(_prose(doc))
    return list(dict.fromkeys(paragraphs))[:limit]


_DOC_MODULES = (
    "argparse", "asyncio", "calendar", "collections", "csv", "datetime", "decimal", "email", "fractions",
    "functools", "heapq", "http.client", "inspect", "itertools", "json", "logging", "os", "pathlib", "random",
    "shutil", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest",
    "urllib.parse", "zipfile",
)  # fmt: skip


def _prose(doc: str) -> list[str]:
    out: list[str] = []
    for block in doc.split("\n\n"):
        lines = [line.strip() for line in block.splitlines()]
        if any(line.startswith((">>>", "...", "$")) for line in lines) or block.startswith((" ", "\t")):
            continue
        text = " ".join(line for line in lines if line)
        if len(text.split()) >= 6 and text[0].isupper() and text.rstrip()[-1:] in ".:!?":
            out.append(text)
    return out


# unlabelled eval texts that ship with studentpack or with Python: no download, nothing to pass
EMBEDDED_TEXTS = {EMBEDDED_HELDOUT: heldout_english, EMBEDDED_DOCSTRINGS: embedded_docstrings}
