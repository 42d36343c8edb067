"""Evaluation data tables: the shared TSV layout, CSV, JSONL/JSON, plain text, `hub:` datasets and the
texts that ship with studentpack.

A data spec is a file (its one split), a directory holding `train.*` and `dev.*` files (the layout
of ../shared/data), `hub:NAME[:CONFIG]` (`hub:glue/stsb` and `hub:glue/sst2` are shorthands for
the GLUE configs) or an `embedded:` name. Every problem with the data is a one-line `UserError` naming
file and line; the rows are checked for a task in `studentpack.tasks.sets`.
"""

from __future__ import annotations

from pathlib import Path

from studentpack.ground.errors import UserError
from studentpack.tasks.shipped import EMBEDDED_TEXTS
from studentpack.text.tables import SUFFIXES, Table, read_table_file

__all__ = ["SUFFIXES", "Table", "locate", "parse_hub", "read_table"]  # Table and SUFFIXES: re-exported

SPLIT_STEMS = {"train": ("train",), "eval": ("dev", "validation", "valid", "test")}
HUB_SPLITS = {"train": "train", "eval": "validation"}


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
    return read_table_file(source)


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
