"""Packing corpus lines into full-length sequences (distill's default) and a line per sequence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studentpack.cli import main
from studentpack.distill.data import tokenize_corpus
from tests.tiny import SENTENCES, make_tokenizer


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return make_tokenizer(max_length=64)


def test_packed_sequences_are_full_and_keep_every_token_in_order(tokenizer) -> None:  # type: ignore[no-untyped-def]
    lines = SENTENCES * 5
    packed = tokenize_corpus(lines, tokenizer, max_length=16, pack=True).sequences
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert all(len(s) <= 16 and s[0] == cls and s[-1] == sep for s in packed)
    assert all(len(s) >= 15 for s in packed[:-1])  # only the last may be short (15: a line ended at the cut)
    # every token of every line, in order, once: nothing dropped at the cuts, nothing repeated
    expected = [t for line in lines for t in tokenizer(line, add_special_tokens=False)["input_ids"]]
    assert [t for s in packed for t in s[1:] if t != sep] == expected
    # a [SEP] closes every line (plus one where a cut fell inside a line)
    assert sum(s.count(sep) for s in packed) >= len(lines)


def test_unpacked_is_a_line_per_sequence(tokenizer) -> None:  # type: ignore[no-untyped-def]
    unpacked = tokenize_corpus(SENTENCES, tokenizer, max_length=64, pack=False).sequences
    assert len(unpacked) == len(SENTENCES)
    assert sum(map(len, unpacked)) / len(unpacked) < 32  # short lines: most of a 64-token row would be padding


def test_packing_fills_rows(tokenizer) -> None:  # type: ignore[no-untyped-def]
    packed = tokenize_corpus(SENTENCES * 4, tokenizer, max_length=32, pack=True)
    unpacked = tokenize_corpus(SENTENCES * 4, tokenizer, max_length=32, pack=False)
    assert len(packed.sequences) < len(unpacked.sequences) / 2
    assert packed.tokens / (32 * len(packed.sequences)) > 0.9


def test_distill_records_packing_and_no_pack_still_works(tiny_bert_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 4))
    common = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--steps", "2", "--batch-size",
              "2", "--max-length", "32", "--threads", "1", "--quiet", "--student-layers", "2"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "packed")]) == 0
    assert main([*common, "--no-pack", "--out", str(tmp_path / "lines")]) == 0
    packed = json.loads((tmp_path / "packed" / "student" / "studentpack.json").read_text())
    lines = json.loads((tmp_path / "lines" / "student" / "studentpack.json").read_text())
    assert packed["config"]["pack"] is True and lines["config"]["pack"] is False
    assert packed["corpus_tokens"]["chunks"] < lines["corpus_tokens"]["chunks"]
    assert packed["tokens_seen"] > lines["tokens_seen"]  # same steps and batch, fuller rows


def test_the_embedded_english_corpus_ships_and_loads() -> None:
    from studentpack.text.corpus import load_corpus

    corpus = load_corpus(["embedded:english"])
    assert len(corpus.texts) > 5000 and len(set(corpus.texts)) == len(corpus.texts)
    words = sum(len(t.split()) for t in corpus.texts)
    assert 60_000 < words < 200_000  # a few hundred KB of general English, not a stub


def test_split_sentences_cuts_paragraphs_at_sentence_ends() -> None:
    from studentpack.text.corpus import split_sentences

    paragraph = (
        "Homarus gammarus , known as the European lobster , is a species . It is related to the American "
        'lobster , H. americanus . He said "Go home now." Then he left the room! Short one. 1990 was a dry year.'
    )
    assert split_sentences([paragraph]) == [
        "Homarus gammarus , known as the European lobster , is a species .",
        "It is related to the American lobster , H. americanus .",  # a lower-case word after "H." is no new sentence
        'He said "Go home now."',
        "Then he left the room!",
        "1990 was a dry year.",  # "Short one." is under the four-word minimum
    ]


def test_distill_split_sentences_trains_on_sentences(tiny_bert_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "text.txt"
    capitalised = [s.capitalize() for s in SENTENCES]
    corpus.write_text("\n".join(". ".join(capitalised[i : i + 4]) + "." for i in range(0, len(SENTENCES), 4)))
    common = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--steps", "1", "--batch-size",
              "2", "--max-length", "64", "--threads", "1", "--quiet", "--student-layers", "2", "--no-pack"]  # fmt: skip
    assert main([*common, "--no-split-sentences", "--out", str(tmp_path / "paragraphs")]) == 0
    assert main([*common, "--split-sentences", "--out", str(tmp_path / "sentences")]) == 0
    paragraphs = json.loads((tmp_path / "paragraphs" / "student" / "studentpack.json").read_text())
    sentences = json.loads((tmp_path / "sentences" / "student" / "studentpack.json").read_text())
    assert sentences["config"]["split_sentences"] is True and paragraphs["config"]["split_sentences"] is False
    assert sentences["corpus_tokens"]["chunks"] > 2 * paragraphs["corpus_tokens"]["chunks"]
