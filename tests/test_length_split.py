"""Length-sorted sub-batches: the cheapest cut, rows back in order, equal results, and the batcher using it."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from studentpack.ground.errors import UserError
from studentpack.serving.backends import TorchBackend
from studentpack.serving.batcher import Batcher
from studentpack.serving.config import ServeConfig
from studentpack.serving.length_split import CPU_CALL_COST_TOKENS, plan_groups, run_in_groups
from studentpack.serving.metrics import Metrics
from tests.fake_server import FakeBackend
from tests.tiny import SENTENCES


def _cost(lengths: Sequence[int], groups: Sequence[Sequence[int]], call_cost: int) -> int:
    return sum(call_cost + len(group) * max(lengths[i] for i in group) for group in groups)


def _cheapest_by_brute_force(lengths: Sequence[int], call_cost: int) -> int:
    ordered = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = None
    for k in range(len(lengths)):
        for cuts in itertools.combinations(range(1, len(lengths)), k):
            bounds = [0, *cuts, len(lengths)]
            groups = [ordered[a:b] for a, b in itertools.pairwise(bounds)]
            cost = _cost(lengths, groups, call_cost)
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_is_the_cheapest_cut(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(3, 60) for _ in range(rng.randint(1, 9))]
    call_cost = rng.choice([1, 16, 64, 200])
    groups = plan_groups(lengths, call_cost)
    assert sorted(int(i) for group in groups for i in group) == list(range(len(lengths)))  # each row once
    assert _cost(lengths, groups, call_cost) == _cheapest_by_brute_force(lengths, call_cost)


def test_short_and_long_rows_part_and_like_rows_stay_together() -> None:
    lengths = [60, 8, 9, 58, 8, 61, 10, 59] * 4  # 32 rows: half short, half long
    groups = plan_groups(lengths, CPU_CALL_COST_TOKENS)
    assert len(groups) == 2
    assert {lengths[i] for i in groups[0]} <= {8, 9, 10} and {lengths[i] for i in groups[1]} <= {58, 59, 60, 61}
    assert len(plan_groups([20] * 32, CPU_CALL_COST_TOKENS)) == 1  # nothing to gain
    assert len(plan_groups(lengths, 0)) == 1  # off
    assert len(plan_groups([12, 40], CPU_CALL_COST_TOKENS)) == 1  # a call costs more than the padding saved


def test_split_results_equal_one_padded_batch_in_the_given_order(tiny_bert_dir: Path) -> None:
    backend = TorchBackend(tiny_bert_dir, device="cpu", max_length=128, threads=1)
    texts = [s if i % 2 else " ".join([s] * 6) for i, s in enumerate(SENTENCES * 2)]  # short and long mixed
    ids = backend.tokenize(texts).ids
    calls: list[list[int]] = []

    def recording_run(rows: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None]) -> np.ndarray:
        calls.append([len(row) for row in rows])
        return backend.run(rows, types)

    whole = backend.run(ids, [None] * len(ids))  # (N, dim): one batch padded to its longest row
    split = run_in_groups(recording_run, ids, [None] * len(ids), call_cost_tokens=8)
    assert len(calls) >= 2, calls
    assert sum(map(len, calls)) == len(ids)
    np.testing.assert_allclose(split, whole, atol=1e-5)


def test_the_batcher_runs_a_mixed_batch_as_sub_batches_and_answers_each_request() -> None:
    backend = FakeBackend(max_length=64)
    texts = ["a" if i % 2 else " ".join(f"w{j}" for j in range(50)) + f" {i}" for i in range(16)]
    ids = backend.tokenize(texts).ids

    async def scenario() -> list[np.ndarray]:
        batcher = Batcher("m", backend, Metrics(), max_batch=32, max_tokens=32 * 64, max_wait_s=0.5,
                          max_queue=64, max_gap_s=0.2, call_cost_tokens=CPU_CALL_COST_TOKENS)  # fmt: skip
        batcher._expect_company = True  # as under load: wait for the 16 companions
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit([row], 30) for row in ids))
        finally:
            await batcher.stop()
        return [result.rows[0] for result in results]

    rows = asyncio.run(scenario())
    for row, want in zip(rows, ids, strict=True):
        np.testing.assert_allclose(row, backend.row(want), atol=1e-6)
    assert [len(batch) for batch in backend.batches] == [8, 8]  # one batch of 16, run as 8 short and 8 long rows
    assert all(len({len(row) for row in batch}) == 1 for batch in backend.batches)


def test_serve_config_turns_splitting_on_for_cpu_only_unless_told() -> None:
    assert ServeConfig().call_cost_tokens == CPU_CALL_COST_TOKENS
    assert ServeConfig(device="cuda").call_cost_tokens == 0
    assert ServeConfig(device="cuda", split_cost_tokens=32).call_cost_tokens == 32
    assert ServeConfig(split_cost_tokens=0).call_cost_tokens == 0
    with pytest.raises(UserError, match="split_cost_tokens"):
        ServeConfig(split_cost_tokens=-2)
