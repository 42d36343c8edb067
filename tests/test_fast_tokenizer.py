"""FastTokenizer (tokenizers alone) gives the ids a transformers fast tokenizer gives for the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from studentpack.engines.fast_tokenizer import FastTokenizer
from studentpack.model import adapter
from studentpack.text.sources import packaged_teacher_dir
from tests.tiny import SENTENCES

TEXTS = [*SENTENCES[:4], "a", "", "   ", "Ünïcödé, ÉMOJI 🎬 and CAPITALS!", " ".join(SENTENCES * 4)]
PAIRS = [SENTENCES[-1], "b", "the other one", "x", "y", "z", " ".join(SENTENCES * 3), "q", "short"]


@pytest.fixture(scope="module", params=["tiny", "teacher"])
def model_dir(request: pytest.FixtureRequest, tiny_bert_dir: Path) -> Path:
    return tiny_bert_dir if request.param == "tiny" else packaged_teacher_dir()


@pytest.mark.parametrize("max_length", [8, 32, 128])
def test_texts_and_pairs_match_transformers(model_dir: Path, max_length: int) -> None:
    ours, theirs = FastTokenizer(model_dir), adapter.load_tokenizer(model_dir)
    assert ours.pad_token_id == theirs.pad_token_id
    for pairs in (None, PAIRS):
        want = theirs(TEXTS, pairs, padding=True, truncation=True, max_length=max_length)
        got = ours(TEXTS, pairs, padding=True, truncation=True, max_length=max_length)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert got[key] == [list(row) for row in want[key]], (key, pairs is None)
        # untruncated, unpadded: what the truncation count compares against
        assert ours(TEXTS, pairs)["input_ids"] == [list(r) for r in theirs(TEXTS, pairs, truncation=False)["input_ids"]]
