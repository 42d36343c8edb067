"""Cut a batch into length-sorted sub-batches when padding would cost more than the extra calls.

A batch is padded to its longest row, so a batch of 32 short and long sentences spends most of its
compute on padding. Running it as a few sub-batches of similar lengths wastes little padding but
pays a fixed cost per call. With rows sorted by length, the cheapest cut into contiguous groups is
a small dynamic programme over cost(group) = call_cost + rows x longest row (in padded tokens).

Measured with the teacher's int8-dynamic graph on SST-2 dev sentences (2-core CPU, 30 random
batches each; benchmarks/bench_length_split.py): a call cost of 64 tokens, the best of 32-256, made
batches of 8 run 1.09x, of 17 1.26x and of 32 1.43x faster than padding each to its longest row, and
left batches of 4 level (1.01x).
On a GPU a call costs far more than padding, so the server turns splitting off there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

CPU_CALL_COST_TOKENS = 64


def plan_groups(lengths: Sequence[int], call_cost_tokens: int) -> list[np.ndarray]:
    """Index groups (each sorted shortest first) whose total padded cost is lowest; one group if cost <= 0."""
    order = np.argsort(np.asarray(lengths), kind="stable")  # (N,) shortest first
    n = len(order)
    if call_cost_tokens <= 0 or n < 2:
        return [order]
    sorted_lengths = [int(lengths[i]) for i in order]
    best = [0] + [0] * n  # best[i]: lowest cost of the i shortest rows
    cut = [0] * (n + 1)  # cut[i]: where the last group of that cheapest plan starts
    for end in range(1, n + 1):
        widest = sorted_lengths[end - 1]  # the longest row of any group ending here
        best[end], cut[end] = min(
            (best[start] + call_cost_tokens + (end - start) * widest, start) for start in range(end)
        )
    groups: list[np.ndarray] = []
    end = n
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def run_in_groups(
    run: Callable[[Sequence[Sequence[int]], Sequence[Sequence[int] | None]], np.ndarray],
    ids: Sequence[Sequence[int]],
    types: Sequence[Sequence[int] | None],
    call_cost_tokens: int,
) -> np.ndarray:
    """`run(ids, types)` over the cheapest groups; rows come back in the order given."""
    groups = plan_groups([len(row) for row in ids], call_cost_tokens)
    if len(groups) == 1:
        return run(ids, types)
    out: np.ndarray | None = None
    for group in groups:
        rows = run([ids[i] for i in group], [types[i] for i in group])  # (len(group), dim)
        if out is None:
            out = np.empty((len(ids), rows.shape[1]), dtype=rows.dtype)
        out[group] = rows
    assert out is not None
    return out
