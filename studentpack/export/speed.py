"""The export's speed trial: every accepted variant timed on this machine, so the choice between them
(ONNX Runtime or OpenVINO, which INT8) follows a measurement here and not a figure from elsewhere.

Each variant runs the same feeds: `batch` rows of real tokens, every row exactly `seq` tokens (the
accuracy sample joined and cut), median of `repeats` timed runs after a warm-up, variants timed one
after another with the same thread count. The figures are for choosing, on a machine that may be busy:
`benchmarks/bench_export.py` is the careful measurement.

Each variant's export.json gets a `speed` block: its own medians and, per batch size, the fastest
accepted variant and how many times slower this one is (1.0 for the winner).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BATCHES = (1, 32)
SEQ = 128
REPEATS = {1: 20, 32: 3}  # timed runs per batch size: batch 32 of the teacher is ~0.2-0.5 s a run here


def trial_feeds(tokenizer: Any, texts: Sequence[str], batch: int, seq: int) -> dict[str, np.ndarray]:
    """`batch` rows of exactly `seq` real tokens ([CLS] text... [SEP]), from `texts` joined in order."""
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= batch * (seq - 2):
            break
    if not ids:
        ids = [tokenizer.unk_token_id or 0]
    while len(ids) < batch * (seq - 2):  # a short sample repeats
        ids += ids
    body = np.array(ids[: batch * (seq - 2)], dtype=np.int64).reshape(batch, seq - 2)
    cls = np.full((batch, 1), tokenizer.cls_token_id or 0, dtype=np.int64)
    sep = np.full((batch, 1), tokenizer.sep_token_id or 0, dtype=np.int64)
    input_ids = np.concatenate([cls, body, sep], axis=1)  # (B, seq)
    return {
        "input_ids": input_ids,
        "attention_mask": np.ones_like(input_ids),
        "token_type_ids": np.zeros_like(input_ids),
    }


def median_ms(run: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def speed_trial(
    variants: dict[str, Path],
    tokenizer: Any,
    texts: Sequence[str],
    threads: int | None,
    max_length: int,
    batches: Sequence[int] = BATCHES,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """variant name -> its `speed` block (see the module docstring)."""
    from studentpack.engines.graph import open_session

    seq = min(SEQ, max_length)
    feeds = {batch: trial_feeds(tokenizer, texts, batch, seq) for batch in batches}
    medians: dict[str, dict[int, float]] = {}
    for name, directory in variants.items():
        session = open_session(directory, threads=threads, warmup=False)
        output = "logits" if "logits" in session.output_names else session.output_names[-1]
        medians[name] = {}
        for batch in batches:
            inputs: dict[str, np.ndarray] = {
                k: v.astype(session.input_types[k]) for k, v in feeds[batch].items() if k in session.input_types
            }
            run = functools.partial(session.run, inputs, [output])
            medians[name][batch] = median_ms(run, REPEATS.get(batch, 5))
        log(f"speed: {name}: " + ", ".join(f"batch {b} {medians[name][b]:.1f} ms" for b in batches))
    return rank(medians, seq, threads)


def rank(medians: dict[str, dict[int, float]], seq: int, threads: int | None) -> dict[str, dict[str, Any]]:
    """Per variant: its medians, and per batch the fastest variant and this one's ratio to it."""
    blocks: dict[str, dict[str, Any]] = {}
    batches = sorted({b for m in medians.values() for b in m})
    fastest = {b: min(medians, key=lambda v: medians[v][b]) for b in batches}
    for name, times in medians.items():
        blocks[name] = {
            "seq": seq,
            "threads": threads,
            "median_ms": {str(b): round(times[b], 3) for b in batches},
            "fastest": {str(b): fastest[b] for b in batches},
            "times_the_fastest": {str(b): round(times[b] / medians[fastest[b]][b], 3) for b in batches},
            "compared": sorted(medians),
        }
    return blocks


def fastest_of(records: dict[str, dict[str, Any]], candidates: Sequence[str], batch: int = 1) -> str | None:
    """The candidate with the lowest median at `batch` in its export.json speed block (None: no figures)."""
    timed = {
        name: records[name]["speed"]["median_ms"][str(batch)]
        for name in candidates
        if name in records and str(batch) in ((records[name].get("speed") or {}).get("median_ms") or {})
    }
    return min(timed, key=lambda name: timed[name]) if timed else None
