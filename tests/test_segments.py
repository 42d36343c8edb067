"""Isolated packing: lines packed side by side must encode exactly as they would alone.

Isolated (not joined) lines are the choice where the student is judged on single sentences (STS-B,
SST-2): see BENCHMARKS.md "Packing in isolation". These tests pin the property that makes that
true: no token attends across a line boundary, and positions restart at each line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studentpack.cli import main
from studentpack.distill.data import collate, collate_rows, tokenize_corpus
from studentpack.model import adapter
from studentpack.model.features import FeatureRequest
from studentpack.model.pooling import mean_pool as pooled
from studentpack.text.segments import encoder_inputs, positions_within, same_segment, segment_ids, segment_means
from studentpack.transfer.relations import relation_kl
from tests.tiny import SENTENCES, make_tokenizer, save_roberta_dir


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return make_tokenizer(max_length=64)


def test_segment_ids_and_positions_restart_at_each_line() -> None:
    segments = segment_ids([[3, 2], [4]], width=6)
    assert segments.tolist() == [[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 0, 0]]
    assert positions_within(segments)[:, :5].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    allowed = same_segment(segments)
    assert not allowed[0, 0, 3] and allowed[0, 3, 4] and not allowed[0, 4, 5]  # no crossing, no padding
    assert allowed.any(dim=-1).all()  # every row, padding included, has a key: no empty softmax


def test_isolated_rows_hold_whole_lines_in_order(tokenizer) -> None:  # type: ignore[no-untyped-def]
    lines = SENTENCES * 3
    isolated = tokenize_corpus(lines, tokenizer, max_length=32, pack=True, isolate=True)
    alone = tokenize_corpus(lines, tokenizer, max_length=32, pack=False)
    assert isolated.segments is not None
    assert all(
        len(row) <= 32 and sum(lengths) == len(row)
        for row, lengths in zip(isolated.sequences, isolated.segments, strict=True)
    )
    # cutting each row at its line lengths gives back the unpacked sequences, in order
    cut = []
    for row, lengths in zip(isolated.sequences, isolated.segments, strict=True):
        start = 0
        for length in lengths:
            cut.append(row[start : start + length])
            start += length
    assert cut == alone.sequences
    assert len(isolated.sequences) < len(alone.sequences) / 2  # and the rows are fuller


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
def test_packed_lines_encode_as_they_would_alone(tiny_bert_dir: Path, tokenizer, kernel: str) -> None:  # type: ignore[no-untyped-def]
    model = adapter.load_encoder(tiny_bert_dir, attn_implementation=kernel).eval()
    _assert_lines_encode_alone(model, tokenizer)


def test_roberta_positions_are_shifted_past_the_padding_index(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = adapter.load_encoder(save_roberta_dir(tmp_path / "roberta")).eval()
    _assert_lines_encode_alone(model, tokenizer)


def _assert_lines_encode_alone(model, tokenizer) -> None:  # type: ignore[no-untyped-def]
    chunks = tokenize_corpus(SENTENCES[:6], tokenizer, max_length=64, pack=True, isolate=True)
    assert chunks.segments is not None and max(len(x) for x in chunks.segments) >= 3  # several lines per row
    ids, _, segments = collate_rows(chunks, range(len(chunks.sequences)), tokenizer.pad_token_id)
    assert segments is not None
    with torch.no_grad():
        packed = model(input_ids=ids, **encoder_inputs(model, segments)).last_hidden_state  # (B, T, H)
        for row, lengths in enumerate(chunks.segments):
            start = 0
            for length in lengths:
                line = ids[row : row + 1, start : start + length]  # (1, L): [CLS] line [SEP]
                alone = model(input_ids=line, attention_mask=torch.ones_like(line)).last_hidden_state[0]
                torch.testing.assert_close(packed[row, start : start + length], alone, atol=1e-5, rtol=1e-4)
                start += length


def test_run_encoder_with_segments_matches_lines_alone(tiny_bert_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = adapter.load_encoder(tiny_bert_dir).eval()
    chunks = tokenize_corpus(SENTENCES[:4], tokenizer, max_length=64, pack=True, isolate=True)
    ids, mask, segments = collate_rows(chunks, [0], tokenizer.pad_token_id)
    request = FeatureRequest(hidden_layers=frozenset({2}))
    with torch.no_grad():
        joined, _ = adapter.run_encoder(model, ids, mask, request)
        isolated, _ = adapter.run_encoder(model, ids, mask, request, segments)
    assert chunks.segments is not None
    first = chunks.segments[0][0]
    line = ids[:, :first]
    with torch.no_grad():
        alone, _ = adapter.run_encoder(model, line, torch.ones_like(line), request)
    torch.testing.assert_close(isolated.hidden[2][:, :first], alone.hidden[2], atol=1e-5, rtol=1e-4)
    # without the segments the first line sees the others: the states differ (the check can fail)
    assert not torch.allclose(joined.hidden[2][:, :first], alone.hidden[2], atol=1e-3)


def test_segment_means_equal_pooling_each_line_alone() -> None:
    torch.manual_seed(0)
    states = torch.randn(2, 7, 5)  # (B, T, H)
    segments = segment_ids([[3, 4], [2]], width=7)
    means = segment_means(states, segments)  # (3, H)
    one = torch.ones(1, 3)
    expected = [
        pooled(states[:1, :3], one),
        pooled(states[:1, 3:7], torch.ones(1, 4)),
        pooled(states[1:, :2], one[:, :2]),
    ]
    torch.testing.assert_close(means, torch.cat(expected))


def test_relation_kl_over_packed_lines_equals_the_padded_batch_of_those_lines() -> None:
    torch.manual_seed(0)
    lengths = [3, 5]
    student = torch.randn(3, 1, 8, 8, dtype=torch.float64)  # (R, B=1, T, D): two lines side by side
    teacher = torch.randn(3, 1, 8, 12, dtype=torch.float64)
    packed = relation_kl(student, teacher, torch.ones(1, 8), heads=4, segments=segment_ids([lengths], 8))
    # the same two lines as a padded batch of two rows
    _, mask = collate([[0] * 3, [0] * 5], pad_id=0)  # (2, 5) mask
    s_rows = torch.zeros(3, 2, 5, 8, dtype=torch.float64)
    t_rows = torch.zeros(3, 2, 5, 12, dtype=torch.float64)
    s_rows[:, 0, :3], s_rows[:, 1, :5] = student[:, 0, :3], student[:, 0, 3:]
    t_rows[:, 0, :3], t_rows[:, 1, :5] = teacher[:, 0, :3], teacher[:, 0, 3:]
    torch.testing.assert_close(packed, relation_kl(s_rows, t_rows, mask, heads=4))
    joined = relation_kl(student, teacher, torch.ones(1, 8), heads=4)
    assert not torch.allclose(packed, joined)  # the segments change the relations (the check can fail)


@pytest.mark.parametrize("method", ["hs", "mha", "emb", "od"])
def test_distill_with_isolated_lines_runs_and_records_it(tiny_bert_dir: Path, tmp_path: Path, method: str) -> None:
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES * 4))
    out = tmp_path / method
    argv = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--method", method, "--steps", "2",
            "--batch-size", "2", "--max-length", "32", "--threads", "1", "--quiet", "--student-layers", "2",
            "--isolate-lines", "--fit-head-steps", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert manifest["config"]["isolate_lines"] is True and manifest["config"]["pack"] is True
    assert all(torch.isfinite(torch.tensor(v)) for v in manifest["final_terms"].values())


def test_the_trainer_feeds_line_numbers_to_teacher_and_student(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    from studentpack.distill.config import DistillConfig
    from studentpack.distill.data import BatchPlan
    from studentpack.distill.plan import make_plan
    from studentpack.distill.rundir import RunDir
    from studentpack.distill.trainer import Distiller
    from studentpack.model.student import StudentSpec

    config = DistillConfig(teacher=str(tiny_bert_dir), corpus=(str(corpus),), method="hs", max_length=32,
                           batch_size=2, student=StudentSpec(layers=2), threads=1)  # fmt: skip
    distiller = Distiller(make_plan(config), RunDir(tmp_path / "run"), progress=False)
    distiller._load()
    indices = BatchPlan(len(distiller.chunks.sequences), 2, 1, 0).indices(0, 0)
    ids, mask, lines, types, positions, labels = distiller._batch(indices, 0)
    assert types is None  # no pairs
    assert lines is not None and int(lines.max()) >= 2  # rows of several isolated lines
    teacher = distiller.teacher(ids, mask, positions, labels, lines)
    assert teacher.segments is lines
    with torch.no_grad():
        isolated = distiller.bundle(ids, mask, positions, teacher)["hs"]
        teacher.segments = None  # the same batch with the lines allowed to see each other
        joined = distiller.bundle(ids, mask, positions, teacher)["hs"]
    assert not torch.isclose(isolated, joined)  # the student's forward used the line numbers
