"""The word-replacement augmentation script (benchmarks/augment_text.py) on a tiny model's vocabulary."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.benchmark_scripts import load_benchmark
from tests.tiny import WORDS


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_benchmark("augment_text")


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_pairs_keep_originals_first_then_variants_of_vocabulary_words(
    script: ModuleType, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    table = tmp_path / "train.tsv"
    table.write_text("sentence1\tsentence2\tscore\nThe film was good.\tthe story was bad\t4.0\n"
                     "a new movie\tshe had one film\t1.5\n")  # fmt: skip
    out = tmp_path / "aug.tsv"
    args = [str(table), str(out), "--teacher", str(tiny_bert_dir), "--variants", "5", "--p", "1.0", "--k", "3"]
    assert script.main(args) == 0
    rows = _rows(out)
    assert rows[0] == ["sentence1", "sentence2", "score"]
    assert rows[1:3] == [["The film was good.", "the story was bad", "4.0"], ["a new movie", "she had one film", "1.5"]]
    variants = rows[3:]
    assert len(variants) == 10
    assert [v[2] for v in variants] == ["4.0"] * 5 + ["1.5"] * 5  # the source row's label, as documented
    assert any(v[0] != "The film was good." or v[1] != "the story was bad" for v in variants[:5])
    for sentence1, sentence2, _ in variants:
        for sentence in (sentence1, sentence2):
            for word in sentence.rstrip(".").split(" "):
                assert word.lower() in WORDS  # a whole-word vocabulary entry, never a piece or a special
    # the capital and the full stop of the source stay where they were
    assert all(v[0][0].isupper() and v[0].endswith(".") for v in variants[:5])
    again = tmp_path / "again.tsv"
    assert script.main([*args[:1], str(again), *args[2:]]) == 0
    assert _rows(again) == rows  # seeded


def test_neighbours_are_nearest_by_input_embedding(script: ModuleType, tiny_bert_dir: Path) -> None:
    neighbours = script.Neighbours(str(tiny_bert_dir), k=2)
    table = neighbours.table  # [words, hidden], unit rows
    i = neighbours.index["film"]
    order = torch.argsort(table @ table[i], descending=True).tolist()
    expected = [neighbours.words[j] for j in order if j != i][:2]
    assert neighbours.of("Film") == expected
    assert neighbours.of("zzz") == []


@pytest.mark.parametrize(
    ("content", "extra", "says"),
    [
        ("id\tscore\n1\t2.0\n", [], "no text column"),
        (None, [], "No such file"),
        ("sentence\tlabel\nthe film\t1\n", ["--p", "1.5"], "--p and --one-side in [0, 1]"),
        ("sentence\tlabel\nthe film\t1\n", ["--variants", "0"], "--variants and --k must be >= 1"),
    ],
)
def test_bad_input_is_refused_in_one_line(
    script: ModuleType,
    tiny_bert_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    extra: list[str],
    says: str,
) -> None:
    table = tmp_path / "train.tsv"
    if content is not None:
        table.write_text(content)
    out = tmp_path / "out.tsv"
    assert script.main([str(table), str(out), "--teacher", str(tiny_bert_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert not out.exists()
