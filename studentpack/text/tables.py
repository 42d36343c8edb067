"""Rows of a table file: the shared TSV layout (tabs, no quoting), CSV, JSON Lines, a JSON list, plain text.

Every problem is a one-line `UserError` naming file and line. Both task data (`studentpack.tasks.data`)
and distillation corpora (`studentpack.text.corpus`, which keeps a table's text columns) read files here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError

SUFFIXES = (".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".txt")


@dataclass(frozen=True)
class Table:
    """Rows of one split as read: `rows[i]` maps column -> value, `lines[i]` says where it came from."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    def where(self, i: int) -> str:
        return f"{self.source} line {self.lines[i]}" if self.lines[i] else f"{self.source} row {i + 1}"


def read_utf8(path: Path, what: str) -> str:
    """A text file's contents (a leading BOM dropped); unreadable or non-UTF-8 files are user errors."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_table_file(source: str) -> Table:
    """Every row of one file, by its suffix (no validation of values yet)."""
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
