"""Data loaders: the shared TSV layout, CSV, JSONL/JSON, text, directories, hub specs, and their errors."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from studentpack.ground.errors import UserError
from studentpack.tasks import data as D
from studentpack.tasks import sets, shipped
from tests.test_eval_support import STSB_HEADER, stsb_tsv, write_jsonl, write_table


def load_stsb(source: str | Path, **columns: str) -> sets.PairSet:
    return sets.stsb_pairs(D.read_table(str(source)), sets.Columns(**columns))


def load_sst2(source: str | Path, **columns: str) -> sets.LabeledSet:
    return sets.sst2_labeled(D.read_table(str(source)), sets.Columns(**columns))


def test_shared_tsv_layout_keeps_quotes_and_reads_scores(tmp_path: Path) -> None:
    path = stsb_tsv(tmp_path / "dev.tsv", [('He said "hi', "a b", 4.25), ("x", "y's ' \"", 0.0)])
    pairs = load_stsb(path)
    assert pairs.first == ['He said "hi', "x"]
    assert pairs.second == ["a b", "y's ' \""]
    np.testing.assert_array_equal(pairs.scores, [4.25, 0.0])


def test_sst2_tsv(tmp_path: Path) -> None:
    path = write_table(tmp_path / "dev.tsv", ["label", "sentence"], [(0, "bad ."), (1, "good , fun")])
    data = load_sst2(path)
    assert data.texts == ["bad .", "good , fun"]
    assert data.labels.tolist() == [0, 1]
    assert data.labels.dtype == np.int64


def test_csv_with_quoted_commas_and_column_options(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('left,right,gold\n"a, b","c ""d""",3.5\nx,y,1\n', encoding="utf-8")
    pairs = load_stsb(path, text="left", pair="right", label="gold")
    assert pairs.first == ["a, b", "x"]
    assert pairs.second == ['c "d"', "y"]
    assert pairs.scores.tolist() == [3.5, 1.0]


def test_jsonl_with_numbers_and_label_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok", "y": 1}, {"text": "no", "y": 0.0}])
    data = load_sst2(path, label="y")
    assert data.texts == ["ok", "no"]
    assert data.labels.tolist() == [1, 0]


def test_json_list_and_txt(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('[{"sentence": "a", "label": "1"}]', encoding="utf-8")
    assert load_sst2(tmp_path / "d.json").labels.tolist() == [1]
    (tmp_path / "t.txt").write_text("one line\n\n two \n", encoding="utf-8")
    texts = sets.plain_texts(D.read_table(str(tmp_path / "t.txt")), sets.Columns())
    assert texts.texts == ["one line", "two"]


def test_plain_texts_from_stsb_uses_both_sentences_once(tmp_path: Path) -> None:
    path = stsb_tsv(tmp_path / "dev.tsv", [("a", "b", 1.0), ("b", "c", 2.0)])
    assert sets.plain_texts(D.read_table(str(path)), sets.Columns()).texts == ["a", "b", "c"]


def test_directory_layout_and_split_override(tmp_path: Path) -> None:
    write_table(tmp_path / "train.tsv", ["label", "sentence"], [(0, "t")])
    write_table(tmp_path / "dev.tsv", ["label", "sentence"], [(1, "d")])
    write_jsonl(tmp_path / "test.jsonl", [{"sentence": "x", "label": 0}])
    assert D.locate(str(tmp_path), "train") == str(tmp_path / "train.tsv")
    assert D.locate(str(tmp_path), "eval") == str(tmp_path / "dev.tsv")
    assert D.locate(str(tmp_path), "eval", "test") == str(tmp_path / "test.jsonl")
    with pytest.raises(UserError, match="no eval split"):
        D.locate(str(tmp_path), "eval", "nope")


def test_subsets_are_stable_and_seeded(tmp_path: Path) -> None:
    rows = [(i % 2, f"s{i}") for i in range(50)]
    data = load_sst2(write_table(tmp_path / "d.tsv", ["label", "sentence"], rows))
    assert sets.head(data, 3).texts == ["s0", "s1", "s2"]
    a, b, c = sets.sample(data, 10, 0), sets.sample(data, 10, 0), sets.sample(data, 10, 1)
    assert a.texts == b.texts and a.texts != c.texts and len(a) == 10
    assert sets.sample(data, None, 0) is data


def test_embedded_docstrings_are_prose_not_distillation_corpus() -> None:
    from studentpack.text.corpus import embedded_paragraphs

    texts = shipped.embedded_docstrings(200)
    assert len(texts) == 200 and len(set(texts)) == 200
    assert all(len(t.split()) >= 6 for t in texts)
    assert not set(texts) & set(embedded_paragraphs())


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = "".join(c if c.isalnum() or c.isspace() else " " for c in text.lower()).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_heldout_english_shares_no_8_words_with_any_shipped_corpus() -> None:
    from studentpack.text.corpus import EMBEDDED, load_corpus

    texts = shipped.heldout_english()
    assert len(texts) == 1000 and len({t.lower() for t in texts}) == 1000
    assert D.read_table(D.locate(shipped.EMBEDDED_HELDOUT, "eval"), "eval").rows[0]["text"] == texts[0]
    held = set().union(*(_shingles(t) for t in texts))
    for corpus in EMBEDDED:
        seen = set().union(*(_shingles(t) for t in load_corpus([corpus]).texts))
        assert not held & seen, corpus


def test_hub_spec_parsing() -> None:
    assert D.parse_hub("hub:glue/stsb") == ("nyu-mll/glue", "stsb")
    assert D.parse_hub("hub:glue/sst2") == ("nyu-mll/glue", "sst2")
    assert D.parse_hub("hub:user/set:cfg") == ("user/set", "cfg")
    assert D.parse_hub("hub:user/set") == ("user/set", None)
    with pytest.raises(UserError):
        D.parse_hub("hub:")


class _FakeDataset:
    def __init__(self, columns: dict[str, list]) -> None:
        self.columns = columns
        self.column_names = list(columns)

    def __getitem__(self, name: str) -> list:
        return self.columns[name]


def test_hub_loading_goes_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(name: str, config: str | None, split: str) -> _FakeDataset:
        calls.append((name, config, split))
        return _FakeDataset({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [4.0, 1.5], "idx": [0, 1]})

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    pairs = sets.stsb_pairs(D.read_table("hub:glue/stsb", "eval"), sets.Columns())
    assert calls == [("nyu-mll/glue", "stsb", "validation")]
    assert pairs.first == ["a", "b"] and pairs.scores.tolist() == [4.0, 1.5]
    assert pairs.source == "hub:glue/stsb[validation]"


def test_hub_failure_is_one_line_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(*args: object, **kwargs: object) -> None:
        raise ConnectionError("no network here\nsecond line")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(UserError, match=r"^cannot load hub:glue/sst2 split train: no network here$"):
        D.read_table("hub:glue/sst2", "train")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("label\tsentence\n", "holds no examples"),
        ("", "is empty"),
        ("label\ttext_x\n1\ta\n", "no text column"),
        ("lbl\tsentence\n1\ta\n", "no label column"),
        ("label\tsentence\n2\ta\n", r"line 2: label '2' is not one of 0, 1"),
        ("label\tsentence\n1\ta\n0.5\tb\n", r"line 3: label '0.5' is not one of 0, 1"),
        ("label\tsentence\n1\ta\textra\n", "line 2 has 3 fields but the header has 2"),
    ],
)
def test_sst2_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_sst2(path)


@pytest.mark.parametrize(("score", "ok"), [("5", True), ("0", True), ("5.01", False), ("-1", False), ("nan", False)])
def test_stsb_score_range(tmp_path: Path, score: str, ok: bool) -> None:
    path = write_table(tmp_path / "d.tsv", STSB_HEADER, [[0, "g", "f", "y", 0, "s", "s", "a", "b", score]])
    if ok:
        assert load_stsb(path).scores.tolist() == [float(score)]
    else:
        with pytest.raises(UserError, match=r"is not a number in \[0, 5\]"):
            load_stsb(path)


def test_jsonl_errors(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"sentence": "a", "label": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        D.read_table(str(tmp_path / "a.jsonl"))
    (tmp_path / "b.jsonl").write_text('{"sentence": 3, "label": 1}\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 1: sentence is int, not text"):
        load_sst2(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(UserError, match="not a JSON object"):
        D.read_table(str(tmp_path / "c.jsonl"))


def test_unknown_column_and_format_and_encoding(tmp_path: Path) -> None:
    path = write_table(tmp_path / "d.tsv", ["label", "sentence"], [(1, "a")])
    with pytest.raises(UserError, match=r"has no column 'text' \(columns: label, sentence\)"):
        load_sst2(path, text="text")
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match="unknown format"):
        D.read_table(str(tmp_path / "d.parquet"))
    (tmp_path / "e.tsv").write_bytes(b"label\tsentence\n1\t\xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8"):
        D.read_table(str(tmp_path / "e.tsv"))
    with pytest.raises(UserError, match="data not found"):
        D.locate(str(tmp_path / "missing.tsv"), "eval")
