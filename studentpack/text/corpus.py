"""Unlabeled text for distillation: text files, tables (their text columns), directories, hub datasets or the
embedded default."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from studentpack.ground.errors import UserError
from studentpack.ground.provenance import hash_texts
from studentpack.text.sources import EMBEDDED_CORPUS
from studentpack.text.tables import SUFFIXES, Table, read_table_file, read_utf8

_MIN_WORDS = 4
# Table files give only their text columns: a task's train split is unlabelled text for distillation, and
# reading its lines whole would put the label column into the text.
TABLE_SUFFIXES = tuple(suffix for suffix in SUFFIXES if suffix != ".txt")  # a .txt corpus is a paragraph per line
TEXT_COLUMNS = ("text", "sentence", "sentence1", "sentence2", "question", "question1", "question2", "premise",
                "hypothesis")  # fmt: skip
# joins a pair row's two texts into one corpus text (`load_corpus(pairs=True)`); the tokenizer side puts the
# model's own separator there. A tab: the shared TSV layout cannot hold one inside a cell, others lose theirs
PAIR_SEPARATOR = "\t"


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    sources: list[str]
    sha256: str = field(default="")

    def describe(self) -> dict[str, object]:
        return {"sources": self.sources, "texts": len(self.texts), "sha256": self.sha256}


def load_corpus(specs: Sequence[str] | None, pairs: bool = False) -> Corpus:
    """Read every source into a list of paragraphs (short lines dropped), in a stable order.

    pairs: every source is a table with two text columns, and each row becomes one text, its two sides
    joined by PAIR_SEPARATOR (the input a cross-encoder reads).
    """
    specs = list(specs) if specs else [EMBEDDED_CORPUS]
    texts: list[str] = []
    for spec in specs:
        found = [t for t in (_read_pairs(spec) if pairs else _read_source(spec)) if len(t.split()) >= _MIN_WORDS]
        if not found:
            raise UserError(f"corpus {spec} holds no usable text (lines of at least {_MIN_WORDS} words)")
        texts.extend(found)
    return Corpus(texts=texts, sources=specs, sha256=hash_texts(texts))


def _read_source(spec: str) -> list[str]:
    if spec in EMBEDDED:
        return EMBEDDED[spec]()
    if spec.startswith("hub:"):
        return _read_hub(spec[4:])
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(f"corpus directory {spec} holds no files")
        return [line for f in files for line in _read_file(f)]
    if path.is_file():
        return _read_file(path)
    raise UserError(f"corpus not found: {spec}")


def _read_pairs(spec: str) -> list[str]:
    """A table's rows as 'first PAIR_SEPARATOR second', from its two text columns; anything else is refused."""
    path = Path(spec).expanduser()
    if not path.is_file() or path.suffix.lower() not in TABLE_SUFFIXES:
        kinds = ", ".join(TABLE_SUFFIXES)
        raise UserError(f"--pairs reads table files ({kinds}) with two text columns; {spec} is not one")
    table = read_table_file(str(path))
    columns = text_columns(table, f"corpus file {spec}")
    if len(columns) != 2:
        raise UserError(f"--pairs needs two text columns in {spec} (such as sentence1 and sentence2); it has "
                        f"{len(columns)}: {', '.join(columns)}")  # fmt: skip
    out = []
    for row in table.rows:
        first, second = (" ".join(str(row.get(c) or "").split()) for c in columns)  # tabs inside cells -> spaces
        if first and second:
            out.append(f"{first}{PAIR_SEPARATOR}{second}")
    return out


def _read_file(path: Path) -> list[str]:
    return _read_table_texts(path) if path.suffix.lower() in TABLE_SUFFIXES else _read_lines(path)


def _read_table_texts(path: Path) -> list[str]:
    """Every text column of every row, in row order (a pair's two sentences side by side); labels left out."""
    table = read_table_file(str(path))
    columns = text_columns(table, f"corpus file {path}")
    values = (row.get(c) for row in table.rows for c in columns)
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def text_columns(table: Table, what: str) -> list[str]:
    """The table's columns that hold text (TEXT_COLUMNS, any case); none is a one-line UserError naming `what`."""
    columns = [c for c in table.columns if c.lower() in TEXT_COLUMNS]
    if not columns:
        raise UserError(
            f"{what} has no text column (one of {', '.join(TEXT_COLUMNS)}); "
            f"its columns: {', '.join(table.columns) or 'none'}"
        )
    return columns


def _read_lines(path: Path) -> list[str]:
    text = read_utf8(path, "corpus file")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_hub(name: str) -> list[str]:
    dataset, _, config = name.partition(":")
    try:
        import datasets
    except ImportError as exc:
        raise UserError("hub corpora need the datasets package: pip install 'studentpack[hub]'") from exc
    try:
        data = datasets.load_dataset(dataset, config or None, split="train")
    except Exception as exc:
        raise UserError(f"cannot load hub dataset {name}: {str(exc).splitlines()[0]}") from exc
    column = "text" if "text" in data.column_names else data.column_names[0]
    return [str(t).strip() for t in data[column] if str(t).strip()]


def embedded_paragraphs() -> list[str]:
    """English prose that every CPython ships: the reference topics behind `help()` (pydoc_data).

    The text is hard-wrapped; we rejoin wrapped lines into paragraphs and drop indented code.
    """
    from pydoc_data.topics import topics

    paragraphs: list[str] = []
    for key in sorted(topics):
        paragraphs.extend(_prose_paragraphs(topics[key].splitlines()))
    return paragraphs


def english_lines() -> list[str]:
    """General modern English written for this project (studentpack/data/english, Apache-2.0): captions,
    reviews, news, conversation, instructions, stories, facts and paraphrases, a text per line."""
    from importlib import resources

    folder = resources.files("studentpack") / "data" / "english"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".txt")), key=lambda f: f.name)
    if not files:
        raise UserError("the embedded English corpus is missing from this install (studentpack/data/english)")
    return [line.strip() for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


# embedded corpora by name: text that ships with Python or with studentpack itself, so no download
EMBEDDED = {"embedded:pydoc": embedded_paragraphs, "embedded:english": english_lines}


def _prose_paragraphs(lines: Iterable[str]) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        is_code = line.startswith("   ") or line.startswith("\t")
        if not line.strip() or is_code:
            if current:
                out.append(re.sub(r"\s+", " ", " ".join(current)).strip())
                current = []
            continue
        current.append(line.strip())
    return out


# a sentence ends at . ! or ? (closing quotes and brackets may follow) before a capital or an opening mark
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")


def training_texts(texts: Sequence[str], split: bool, pairs: bool) -> list[str]:
    """The texts distillation tokenizes: cut into sentences when `split`, except pairs (one input each)."""
    return split_sentences(texts) if split and not pairs else list(texts)


def split_sentences(texts: Sequence[str]) -> list[str]:
    """Each paragraph cut into its sentences (in order; fragments under the minimum word count dropped).

    A heuristic, not a parser: abbreviations such as "H. americanus" may split a sentence in two. It
    serves sentence embedders, whose inputs are sentences rather than the paragraphs a corpus holds.
    """
    out: list[str] = []
    for text in texts:
        out.extend(s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= _MIN_WORDS)
    return out
