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


def test_the_teacher_reads_each_packed_pair_as_the_tokenizer_encodes_it_alone(  # type: ignore[no-untyped-def]
    tokenizer, pair_table: Path
) -> None:
    import torch

    from studentpack.distill.bundle import TeacherRunner
    from studentpack.distill.data import collate_rows, collate_types
    from studentpack.distill.teacher_cache import TeacherCache
    from studentpack.model.features import FeatureRequest
    from tests.tiny import make_bert

    texts = load_corpus([str(pair_table)], pairs=True).texts
    chunks = tokenize_corpus(texts, tokenizer, max_length=64, pack=True, isolate=True, pairs=True)
    alone = [tokenizer(SENTENCES[i], SENTENCES[i + 1], return_tensors="pt") for i in range(len(SENTENCES) - 1)]
    assert chunks.types is not None  # the second side is type 1, as the cross-encoder was trained to read it
    assert [t for row in chunks.types for t in row] == [t for a in alone for t in a["token_type_ids"][0].tolist()]
    # joined packing (no isolation) keeps each pair's types in the stream: [CLS] a [SEP] b [SEP] a' [SEP] ...
    joined = tokenize_corpus(texts, tokenizer, max_length=10_000, pack=True, isolate=False, pairs=True)
    assert joined.types == [[0, *(t for a in alone for t in a["token_type_ids"][0].tolist()[1:])]]
    model = make_bert(layers=2, seed=3)
    with torch.no_grad():  # type embeddings as unlike as a fine-tuned cross-encoder's may be
        model.embeddings.token_type_embeddings.weight[1] += 1.0
    expected = [model(**encoded).last_hidden_state[0] for encoded in alone]  # each (L_i, H)
    runner = TeacherRunner(model, None, FeatureRequest(hidden_layers=frozenset({2})), keep_layers=2)
    rows = list(range(len(chunks.sequences)))
    ids, mask, segments = collate_rows(chunks, rows, tokenizer.pad_token_id)
    empty = torch.zeros(0, dtype=torch.long)
    direct = runner(ids, mask, empty, empty, segments, collate_types(chunks, rows)).hidden[2]  # (B, T, H)
    cache = TeacherCache.build(runner, chunks, tokenizer.pad_token_id, torch.device("cpu"))
    cached = cache.features(rows, mask, segments, collate_types(chunks, rows)).hidden[2]
    for states in (direct, cached):
        lines = [states[row, : sum(lengths)] for row, lengths in enumerate(chunks.segments or [])]
        torch.testing.assert_close(torch.cat(lines), torch.cat(expected), atol=1e-5, rtol=1e-4)


def test_the_mlm_head_fit_reads_pairs_with_their_types(tokenizer, pair_table: Path) -> None:  # type: ignore[no-untyped-def]
    """OD on pairs fits a headless teacher's MLM head on the pair inputs as the teacher reads them."""
    import dataclasses

    import torch

    from studentpack.distill.head_fit import mlm_loss, new_head_like
    from tests.tiny import make_bert

    texts = load_corpus([str(pair_table)], pairs=True).texts
    chunks = tokenize_corpus(texts, tokenizer, max_length=64, pack=True, isolate=True, pairs=True)
    model = make_bert(layers=2, seed=3)
    with torch.no_grad():
        model.embeddings.token_type_embeddings.weight[1] += 1.0
    head, rows = new_head_like(model), list(range(len(chunks.sequences)))

    def loss(of: object) -> float:
        generator = torch.Generator().manual_seed(0)  # the same masked positions for both
        return float(mlm_loss(model, head, of, rows, tokenizer, generator, 0.3, torch.device("cpu")).detach())  # type: ignore[arg-type]

    assert loss(chunks) != pytest.approx(loss(dataclasses.replace(chunks, types=None)), rel=1e-4)


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


@pytest.mark.parametrize("cache_mb", ["2048", "0"])
def test_teacher_and_student_both_read_the_second_side_as_type_1(
    tmp_path: Path, pair_table: Path, cache_mb: str
) -> None:
    """A student that is the teacher's exact copy starts at zero loss though the teacher's type embeddings differ
    strongly (both got the same types, from the teacher's cache or its forward), and a smaller student's type-1
    embedding moves as it learns (it was given type-1 tokens at all)."""
    from safetensors.torch import load_file, save_file

    from tests.tiny import save_bert_dir

    teacher = save_bert_dir(tmp_path / "teacher", layers=2)
    weights = load_file(str(teacher / "model.safetensors"))
    weights["embeddings.token_type_embeddings.weight"][1] += 1.0
    save_file(weights, str(teacher / "model.safetensors"), metadata={"format": "pt"})

    def distill(layers: int, lr: str) -> Path:
        out = tmp_path / f"l{layers}"
        # no weight decay: an embedding row that no token uses then stays exactly where it was
        args = ["distill", "--teacher", str(teacher), "--corpus", str(pair_table), "--pairs", "--out", str(out),
                "--student-layers", str(layers), "--steps", "8", "--batch-size", "4", "--log-every", "1",
                "--lr", lr, "--warmup", "0", "--weight-decay", "0", "--teacher-cache-mb", cache_mb, "--threads", "1",
                "--quiet"]  # fmt: skip
        assert main(args) == 0
        cache = json.loads((out / "student" / "studentpack.json").read_text())["teacher_cache"]
        assert cache["used"] is (cache_mb != "0"), cache
        return out

    copy = distill(2, "1e-9")
    first = json.loads((copy / "log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["loss"] < 1e-10, first
    smaller = load_file(str(distill(1, "1e-2") / "student" / "model.safetensors"))
    moved = smaller["embeddings.token_type_embeddings.weight"] - weights["embeddings.token_type_embeddings.weight"]
    assert float(moved[1].abs().max()) > 1e-4, moved


def test_pairs_for_a_teacher_without_token_types(tmp_path: Path, pair_table: Path) -> None:
    """A RoBERTa-style teacher has one token type: the tokenizer's second-side 1s are not passed to it."""
    from safetensors.torch import load_file, save_file

    from tests.tiny import save_roberta_dir

    teacher = save_roberta_dir(tmp_path / "roberta")  # our WordPiece tokenizer, which does give token types
    config = json.loads((teacher / "config.json").read_text())
    (teacher / "config.json").write_text(json.dumps({**config, "type_vocab_size": 1}))  # as roberta-base's
    weights = load_file(str(teacher / "model.safetensors"))
    key = next(k for k in weights if k.endswith("token_type_embeddings.weight"))
    save_file({**weights, key: weights[key][:1].clone()}, str(teacher / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "run"
    args = ["distill", "--teacher", str(teacher), "--corpus", str(pair_table), "--pairs", "--out", str(out)]
    assert main([*args, *FAST, "--student-layers", "1"]) == 0
    assert (out / "student" / "model.safetensors").is_file()


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
