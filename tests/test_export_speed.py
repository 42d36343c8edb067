"""The export's speed trial: feeds of exactly `seq` real tokens, the ranking, and the pick of the fastest."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from studentpack.export.speed import fastest_of, interleaved_medians, rank, text_feeds, trial_feeds
from tests.tiny import SENTENCES, make_tokenizer


def test_trial_feeds_are_full_rows_of_real_tokens() -> None:
    tokenizer = make_tokenizer()
    feeds = trial_feeds(tokenizer, SENTENCES[:2], batch=3, seq=40)  # too little text: it repeats
    ids = feeds["input_ids"]
    assert ids.shape == (3, 40) and feeds["attention_mask"].all() and not feeds["token_type_ids"].any()
    assert (ids[:, 0] == tokenizer.cls_token_id).all() and (ids[:, -1] == tokenizer.sep_token_id).all()
    body = ids[:, 1:-1]
    assert not np.isin(body, [tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id]).any()
    assert not (body == body[0]).all()  # consecutive text, not one row copied


def test_rank_names_the_fastest_per_batch_and_the_ratios() -> None:
    blocks = rank({"a": {"1": 10.0, "32": 200.0}, "b": {"1": 8.0, "32": 250.0}}, seq=128, threads=2)
    assert blocks["a"]["fastest"] == blocks["b"]["fastest"] == {"1": "b", "32": "a"}
    assert blocks["a"]["times_the_fastest"] == {"1": 1.25, "32": 1.0}
    assert blocks["b"]["times_the_fastest"] == {"1": 1.0, "32": 1.25}
    assert blocks["a"]["median_ms"] == {"1": 10.0, "32": 200.0} and blocks["a"]["compared"] == ["a", "b"]


@pytest.mark.parametrize(("shape", "expected"), [("1", "b"), ("32", "a")])
def test_fastest_of_reads_the_records(shape: str, expected: str) -> None:
    blocks = rank({"a": {"1": 10.0, "32": 200.0}, "b": {"1": 8.0, "32": 250.0}, "c": {"1": 1.0, "32": 1.0}}, 128, 2)
    records = {name: {"speed": block} for name, block in blocks.items()}
    assert fastest_of(records, ["a", "b"], shape) == expected  # c is faster but not a candidate
    assert fastest_of({"a": {}, "b": {}}, ["a", "b"]) is None  # no trial ran


def test_text_feeds_are_one_unpadded_text_each() -> None:
    tokenizer = make_tokenizer()
    feeds = text_feeds(tokenizer, SENTENCES * 4, max_length=64)
    assert len(feeds) == 32  # at most TEXTS
    assert all(f["input_ids"].shape[0] == 1 and f["attention_mask"].all() for f in feeds)
    assert len({f["input_ids"].shape[1] for f in feeds}) > 1  # each at its own length


class _DriftingMachine:
    """A fake clock on a machine that slows down as it runs (another job ramping up): each call costs its
    base time, stretched by how long the machine has been running."""

    def __init__(self, slowdown_per_ms: float) -> None:
        self.now_ms, self.slowdown = 0.0, slowdown_per_ms

    def runner(self, base_ms: float) -> Callable[[], None]:
        def run() -> None:
            self.now_ms += base_ms * (1.0 + self.slowdown * self.now_ms)

        return run

    def clock(self) -> float:
        return self.now_ms / 1000.0


def test_interleaved_rounds_keep_drift_from_picking_the_winner() -> None:
    def medians(rounds: int) -> dict[str, dict[str, float]]:
        machine = _DriftingMachine(slowdown_per_ms=0.002)
        runners = {"slow": {"text": machine.runner(1.05)}, "fast": {"text": machine.runner(1.0)}}
        return interleaved_medians(runners, rounds=rounds, per_round={"text": 80 // rounds}, clock=machine.clock)

    sequential = medians(rounds=1)  # the former schedule: every run of one variant, then the other's
    assert sequential["fast"]["text"] > sequential["slow"]["text"]  # the drift alone makes "fast" look slower
    interleaved = medians(rounds=8)
    assert interleaved["fast"]["text"] < interleaved["slow"]["text"]
