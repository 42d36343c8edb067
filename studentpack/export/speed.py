"""The export's speed trial: every accepted variant timed on this machine, so the choice between them
(ONNX Runtime or OpenVINO, which INT8) follows a measurement here and not a figure from elsewhere.

Each variant runs the same feeds with the same thread count, median of the timed runs after a warm-up.
The variants are interleaved: every session is opened first, then each round times a few runs of every
variant, starting each round at the next variant. Drift on a busy machine (another job starting, the
CPU clocking down) then lands on every variant alike instead of on whichever was timed last. Shapes:
- "1" and "32": batches of 1 and 32 rows of exactly `seq` real tokens (the accuracy sample joined and cut);
- "text": one text per run at its own length, cycling through 32 texts of the accuracy sample (what a
  served request at concurrency 1 costs; short texts favour the engine with the lower fixed cost per run:
  ONNX Runtime's int8 beat OpenVINO's on SST-2 sentences at batch 1, and lost at 128 tokens).
The figures are for choosing, on a machine that may be busy: `benchmarks/bench_export.py` is the careful
measurement.

Each variant's export.json gets a `speed` block: its own medians and, per shape, the fastest accepted
variant and how many times slower this one is (1.0 for the winner).
"""

from __future__ import annotations

import functools
import itertools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BATCHES = (1, 32)
SEQ = 128
TEXTS = 32  # distinct texts in the "text" shape
ROUNDS = 4
# timed runs per shape and round (x ROUNDS in all): batch 32 of the teacher is ~0.2-0.5 s
PER_ROUND = {"1": 5, "32": 1, "text": TEXTS // 2}


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


def interleaved_medians(
    runners: dict[str, dict[str, Callable[[], Any]]],
    rounds: int = ROUNDS,
    per_round: dict[str, int] | None = None,
    warmup: dict[str, int] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, float]]:
    """variant -> shape -> median ms over `rounds` rounds; round r starts at variant r (mod the count).

    `warmup`: untimed runs per shape before the first round (default 2; enough to cycle through every feed).
    """
    per_round = per_round or PER_ROUND
    names = list(runners)
    for name in names:
        for shape, run in runners[name].items():
            for _ in range((warmup or {}).get(shape, 2)):
                run()
    samples: dict[str, dict[str, list[float]]] = {name: {shape: [] for shape in runners[name]} for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for shape, run in runners[name].items():
                for _ in range(per_round.get(shape, 1)):
                    start = clock()
                    run()
                    samples[name][shape].append(clock() - start)
    return {name: {shape: 1000.0 * statistics.median(times) for shape, times in shapes.items()}
            for name, shapes in samples.items()}  # fmt: skip


def text_feeds(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, np.ndarray]]:
    """One feed per text (batch 1, no padding), for up to TEXTS texts."""
    feeds = []
    for text in list(texts)[:TEXTS]:
        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        feeds.append({name: np.asarray(value, dtype=np.int64) for name, value in enc.items()})
    return feeds


def speed_trial(
    variants: dict[str, Path],
    tokenizer: Any,
    texts: Sequence[str],
    threads: int | None,
    max_length: int,
    batches: Sequence[int] = BATCHES,
    text: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """variant name -> its `speed` block (see the module docstring)."""
    from studentpack.engines.graph import open_session

    seq = min(SEQ, max_length)
    shapes: dict[str, list[dict[str, np.ndarray]]] = {
        str(batch): [trial_feeds(tokenizer, texts, batch, seq)] for batch in batches
    }
    if text:
        shapes["text"] = text_feeds(tokenizer, texts, max_length)
    runners: dict[str, dict[str, Callable[[], Any]]] = {}
    for name, directory in variants.items():
        # as `studentpack serve` runs it: ONNX Runtime's idle threads parked, not spinning
        session = open_session(directory, threads=threads, warmup=False, spinning=False)
        output = "logits" if "logits" in session.output_names else session.output_names[-1]
        runners[name] = {}
        for shape, feeds in shapes.items():
            inputs: list[dict[str, np.ndarray]] = [
                {k: v.astype(session.input_types[k]) for k, v in f.items() if k in session.input_types} for f in feeds
            ]
            runners[name][shape] = functools.partial(_run_next, session, itertools.cycle(inputs), output)
    medians = interleaved_medians(runners, warmup={shape: max(2, len(feeds)) for shape, feeds in shapes.items()})
    for name, times in medians.items():
        log(f"speed: {name}: " + ", ".join(f"{_label(shape)} {times[shape]:.1f} ms" for shape in shapes))
    return rank(medians, seq, threads)


def _run_next(session: Any, feeds: Iterator[dict[str, np.ndarray]], output: str) -> Any:
    return session.run(next(feeds), [output])


def _label(shape: str) -> str:
    return "one text" if shape == "text" else f"batch {shape}"


def rank(medians: dict[str, dict[str, float]], seq: int, threads: int | None) -> dict[str, dict[str, Any]]:
    """Per variant: its medians, and per shape the fastest variant and this one's ratio to it."""
    blocks: dict[str, dict[str, Any]] = {}
    shapes = sorted({shape for m in medians.values() for shape in m})
    fastest = {shape: min(medians, key=lambda v: medians[v][shape]) for shape in shapes}
    for name, times in medians.items():
        blocks[name] = {
            "seq": seq,
            "threads": threads,
            "median_ms": {shape: round(times[shape], 3) for shape in shapes},
            "fastest": {shape: fastest[shape] for shape in shapes},
            "times_the_fastest": {shape: round(times[shape] / medians[fastest[shape]][shape], 3) for shape in shapes},
            "compared": sorted(medians),
        }
    return blocks


def fastest_of(records: dict[str, dict[str, Any]], candidates: Sequence[str], shape: str = "text") -> str | None:
    """The candidate with the lowest median for `shape` in its export.json speed block (None: no figures)."""
    timed = {
        name: records[name]["speed"]["median_ms"][shape]
        for name in candidates
        if name in records and shape in ((records[name].get("speed") or {}).get("median_ms") or {})
    }
    return min(timed, key=lambda name: timed[name]) if timed else None
