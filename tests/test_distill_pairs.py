"""`distill --pairs`: a table's two text columns become one cross-encoder input per row."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from studentpack.cli import main
from studentpack.distill.data import tokenize_corpus
from studentpack.text.corpus import PAIR_SEPARATOR, load_corpus, training_texts
from tests.test_distill_cli import FAST, _one_line_error
from tests.tiny import SENTENCES, make_tokenizer


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return make_tokenizer(max_length=64)


@pytest.fixture
def pair_table(tmp_path: Path) -> Path:
    rows = [f"{i}\t{SENTENCES[i]}\t{SENTENCES[i + 1]}\t{i % 5}.0" for i in range(len(SENTENCES) - 1)]
    rows.append("99\tthe film was very good\t\t1.0")  # one side empty: not a pair
    path = tmp_path / "pairs.tsv"
    path.write_text("index\tsentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    return path


def test_rows_become_pairs_without_their_labels(pair_table: Path) -> None:
    texts = load_corpus([str(pair_table)], pairs=True).texts
    assert texts == [f"{SENTENCES[i]}{PAIR_SEPARATOR}{SENTENCES[i + 1]}" for i in range(len(SENTENCES) - 1)]
    # read without --pairs, the same table is its sentences one by one
    assert load_corpus([str(pair_table)]).texts[:2] == [SENTENCES[0], SENTENCES[1]]


def test_a_pair_is_one_sequence_as_the_tokenizer_pairs_it(tokenizer, pair_table: Path) -> None:  # type: ignore[no-untyped-def]
    texts = load_corpus([str(pair_table)], pairs=True).texts
    chunks = tokenize_corpus(texts, tokenizer, max_length=64, pack=True, isolate=True, pairs=True)
    expected = [tokenizer(SENTENCES[i], SENTENCES[i + 1])["input_ids"] for i in range(len(SENTENCES) - 1)]
    assert chunks.segments is not None
    # packed side by side, each pair its own segment: [CLS] first [SEP] second [SEP]
    assert sum(map(len, chunks.segments)) == len(expected)  # a segment per pair
    flat = [t for row in chunks.sequences for t in row]
    assert flat == [t for ids in expected for t in ids]
    assert [n for row in chunks.segments for n in row] == [len(ids) for ids in expected]


def test_a_pair_is_never_cut_into_sentences() -> None:
    pair = f"A man plays. The flute sounds.{PAIR_SEPARATOR}A man is playing a flute now."
    assert training_texts([pair], split=True, pairs=True) == [pair]
    assert training_texts(["A man plays a flute. The flute sounds loud."], split=True, pairs=False) == [
        "A man plays a flute.", "The flute sounds loud."]  # fmt: skip


def test_a_tab_in_plain_text_is_not_a_pair(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = f"the film was good{PAIR_SEPARATOR}and the story was great"
    (sequence,) = tokenize_corpus([text], tokenizer, max_length=64).sequences
    assert sequence == tokenizer(text)["input_ids"]  # one line, no separator inside


def test_distill_with_pairs_writes_a_student(tiny_bert_dir: Path, tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    firsts = [f"{a.capitalize()}. {b.capitalize()}." for a, b in itertools.pairwise(SENTENCES)]
    table = tmp_path / "pairs.tsv"  # each first side holds two sentences, which the default split would cut
    table.write_text("sentence1\tsentence2\n" + "".join(f"{a}\t{b}\n" for a, b in zip(firsts, SENTENCES, strict=False)))
    out = tmp_path / "run"
    args = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(table), "--pairs", "--out", str(out)]
    assert main([*args, *FAST, "--student-layers", "2"]) == 0
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert manifest["config"]["pairs"] is True
    assert manifest["corpus"]["texts"] == len(firsts)
    # a row each, whole: exactly the tokens of the tokenizer's own pair encodings
    expected = sum(len(tokenizer(a, b)["input_ids"]) for a, b in zip(firsts, SENTENCES, strict=False))
    assert manifest["corpus_tokens"]["tokens"] == expected


@pytest.mark.parametrize(
    ("corpus_kind", "fragment"),
    [("text", "reads table files"), ("one-column", "needs two text columns")],
)
def test_pairs_refuse_what_is_not_a_pair_table(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], corpus_kind: str,
    fragment: str,
) -> None:  # fmt: skip
    source = corpus
    if corpus_kind == "one-column":
        source = tmp_path / "one.tsv"
        source.write_text("sentence\tlabel\n" + "".join(f"{s}\t1\n" for s in SENTENCES))
    out = tmp_path / "run"
    rc = main(
        ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(source), "--pairs", "--out", str(out), *FAST]
    )
    _one_line_error(capsys, rc, fragment)
    assert not out.exists()
