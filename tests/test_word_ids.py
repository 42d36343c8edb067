"""The word cache gives the tokenizer's own ids (model/word_ids.py): on the shipped English and prose, on
the texts it must hand to the tokenizer, and only for tokenizers whose split it reproduces."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from studentpack.model.word_ids import WordIds
from studentpack.tasks.shipped import embedded_docstrings, heldout_english
from studentpack.text.sources import packaged_teacher_dir

EDGES = [
    "", "   ", "\t\n", "Don't stop -- it's 3.5% of U.S.A.'s GDP!", "e-mail me at x_y@example.com (now)",
    "C++ and __init__ and {a: [1, 2]}", "[MASK] and [cls] and [SEP]", "a [weird] bracket", "tab\there\nnew\rline",
    "vertical\x0btab and form\x0cfeed", "nul\x00byte", "naïve café façade", "日本語 and English", "emoji 🙂 ok",
    "x" * 150, "supercalifragilisticexpialidocious antidisestablishmentarianism", "MiXeD CaSe WoRdS",
    "numbers 12345678901234567890 and 3rd 21st", "`~!@#$%^&*()_+-={}|[]\\:\";'<>?,./", "trailing space ",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    loaded = Tokenizer.from_file(str(packaged_teacher_dir() / "tokenizer.json"))
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def _reference(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_the_word_split_gives_the_tokenizers_ids(tokenizer: Tokenizer) -> None:
    assert WordIds.applies(tokenizer)
    words = WordIds.for_tokenizer(tokenizer)  # what load_static builds for a static student
    assert words is not None
    for texts in (heldout_english(), embedded_docstrings(1000), EDGES):
        assert words.ids(texts) == _reference(tokenizer, texts)
        assert words.ids(texts) == _reference(tokenizer, texts)  # again, from the cache
    assert len(words.cache) > 1000


def test_a_full_cache_starts_again_and_stays_exact(tokenizer: Tokenizer) -> None:
    words = WordIds(tokenizer, limit=50)
    texts = heldout_english()[:200]
    assert words.ids(texts) == _reference(tokenizer, texts)
    assert 0 < len(words.cache) <= 50


def test_other_tokenizers_are_left_to_themselves(tokenizer: Tokenizer) -> None:
    spec = json.loads(tokenizer.to_str())
    spec["normalizer"]["lowercase"] = False  # a cased model: the split lowercases, so it must not apply
    assert not WordIds.applies(Tokenizer.from_str(json.dumps(spec)))
    assert WordIds.for_tokenizer(Tokenizer.from_str(json.dumps(spec))) is None
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    assert not WordIds.applies(bpe)
