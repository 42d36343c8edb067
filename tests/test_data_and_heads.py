"""Corpus chunks, deterministic batches, MLM masking, and fitting an MLM head for a headless teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studentpack.distill.data import BatchPlan, collate, mask_tokens, tokenize_corpus
from studentpack.distill.head_fit import fit_head
from studentpack.ground.errors import UserError
from studentpack.text.corpus import embedded_paragraphs, load_corpus
from tests.tiny import SENTENCES, make_bert, make_tokenizer


def test_chunks_respect_max_length_and_special_tokens() -> None:
    tok = make_tokenizer()
    long_text = " ".join(SENTENCES)  # far longer than 16 tokens
    chunks = tokenize_corpus([long_text, "the film"], tok, max_length=16)
    assert all(len(s) <= 16 for s in chunks.sequences)
    assert all(s[0] == tok.cls_token_id and s[-1] == tok.sep_token_id for s in chunks.sequences)
    body = [t for s in chunks.sequences for t in s[1:-1]]
    assert body[:20] == tok(long_text, add_special_tokens=False)["input_ids"][:20]
    assert len(chunks.sequences) > 3  # "the film" (2 tokens) is too short to keep


def test_batch_plan_is_a_pure_function_of_step_and_covers_each_epoch() -> None:
    plan, again = BatchPlan(10, 4, 1, seed=3), BatchPlan(10, 4, 1, seed=3)
    assert plan.indices(7, 0) == again.indices(7, 0)
    first_epoch = [i for step in range(5) for i in plan.indices(step, 0)][:10]
    assert sorted(first_epoch) == list(range(10))
    assert BatchPlan(10, 4, 1, seed=4).indices(0, 0) != plan.indices(0, 0)


def test_batch_plan_shards_ranks_disjointly() -> None:
    plan = BatchPlan(100, 5, 2, seed=0)
    assert not set(plan.indices(0, 0)) & set(plan.indices(0, 1))
    assert plan.epoch_of(10) == 1.0


def test_collate_pads_to_longest() -> None:
    ids, mask = collate([[2, 5, 3], [2, 3]], pad_id=0)
    assert ids.tolist() == [[2, 5, 3], [2, 3, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_masking_touches_only_real_non_special_tokens() -> None:
    tok = make_tokenizer()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    gen = torch.Generator().manual_seed(0)
    batch = mask_tokens(ids, mask, tok.all_special_ids, tok.mask_token_id, len(tok), 0.15, gen)
    chosen = torch.zeros(ids.numel(), dtype=torch.bool)
    chosen[batch.positions] = True
    chosen = chosen.view_as(ids)
    assert not (chosen & ~mask.bool()).any()
    assert not (chosen & torch.isin(ids, torch.tensor(tok.all_special_ids))).any()
    assert torch.equal(batch.labels, ids.flatten()[batch.positions])
    assert torch.equal(batch.input_ids[~chosen], ids[~chosen])  # untouched elsewhere
    rate = chosen.sum() / (mask.sum() - 2 * len(SENTENCES))
    assert 0.05 < float(rate) < 0.3
    assert (batch.input_ids.flatten()[batch.positions] == tok.mask_token_id).float().mean() > 0.5


def test_embedded_corpus_is_english_prose() -> None:
    paragraphs = embedded_paragraphs()
    assert len(paragraphs) > 500
    assert sum(len(p.split()) for p in paragraphs) > 20_000
    corpus = load_corpus(None)
    assert corpus.sources == ["embedded:english"] and len(corpus.sha256) == 64  # the default


def test_a_table_corpus_gives_its_text_columns_without_labels(tmp_path: Path) -> None:
    sst2 = tmp_path / "train.tsv"
    sst2.write_text("sentence\tlabel\nthe film is a quiet triumph of craft\t1\nnothing here works at all , sadly\t0\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"sentence1": "a man is playing a guitar", "sentence2": "a man plays the guitar loudly", '
                     '"score": 4.2}\n')  # fmt: skip
    corpus = load_corpus([str(sst2), str(pairs)])
    assert corpus.texts == ["the film is a quiet triumph of craft", "nothing here works at all , sadly",
                            "a man is playing a guitar", "a man plays the guitar loudly"]  # fmt: skip


def test_a_table_without_a_text_column_is_refused(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    scores.write_text("id,score\n1,4.5\n")
    with pytest.raises(UserError, match=r"has no text column .*its columns: id, score"):
        load_corpus([str(scores)])


def test_fitting_a_head_reduces_mlm_loss() -> None:
    torch.manual_seed(0)
    tok = make_tokenizer()
    teacher = make_bert(layers=2, seed=0)
    chunks = tokenize_corpus(SENTENCES * 3, tok, max_length=32)
    _head, record = fit_head(teacher, tok, chunks, steps=40, lr=3e-3, batch_size=8, mask_prob=0.3, seed=0,
                            device=torch.device("cpu"), progress=False)  # fmt: skip
    assert record["source"] == "fitted"
    assert record["mlm_loss_after"] < 0.8 * record["mlm_loss_before"], record


def test_the_head_is_judged_on_chunks_it_never_trains_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from studentpack.distill import head_fit

    held, train = head_fit.split_held_out(200, 8, seed=3)
    assert len(held) == 8 and not set(held) & set(train) and sorted(held + train) == list(range(200))
    assert head_fit.split_held_out(50, 8, seed=3) == ([], list(range(50)))  # too small to spare a batch

    seen: list[list[int]] = []
    real_loss = head_fit.mlm_loss
    monkeypatch.setattr(
        head_fit, "mlm_loss", lambda enc, head, ch, idx, *a: seen.append(list(idx)) or real_loss(enc, head, ch, idx, *a)
    )
    tok = make_tokenizer()
    chunks = tokenize_corpus(SENTENCES * 40, tok, max_length=16, pack=False)
    _head, record = head_fit.fit_head(make_bert(layers=2, seed=0), tok, chunks, steps=30, lr=3e-3, batch_size=4,
                                      mask_prob=0.3, seed=0, device=torch.device("cpu"), progress=False)  # fmt: skip
    held_out = set(seen[0])  # the first and the last call measure; the ones between train
    assert record["held_out_chunks"] == 4 and seen[0] == seen[-1]
    assert not held_out & {i for batch in seen[1:-1] for i in batch}
