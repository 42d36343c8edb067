"""Evaluation data tables: the shared TSV layout, CSV, JSONL/JSON, plain text, `hub:` datasets and the
texts that ship with studentpack.

A data spec is a file (its one split), a directory holding `train.*` and `dev.*` files (the layout
of ../shared/data), `hub:NAME[:CONFIG]` (`hub:glue/stsb` and `hub:glue/sst2` are shorthands for
the GLUE configs) or an `embedded:` name. Every problem with the data is a one-line `UserError` naming
file and line; the rows are checked for a task in `studentpack.tasks.sets`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError
from studentpack.tasks.shipped import EMBEDDED_TEXTS
from studentpack.text.corpus import read_utf8

SUFFIXES = (".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".txt")
SPLIT_STEMS = {"train": ("train",), "eval": ("dev", "validation", "valid", "test")}
HUB_SPLITS = {"train": "train", "eval": "validation"}


@dataclass(frozen=True)
class Table:
    """Rows of one split as read: `rows[i]` maps column -> value, `lines[i]` says where it came from."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    def where(self, i: int) -> str:
        return f"{self.source} line {self.lines[i]}" if self.lines[i] else f"{self.source} row {i + 1}"


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
