"""Does a text's vector depend on the other texts in its batch?

ONNX Runtime's dynamic INT8 computes one activation scale per tensor over the whole batch, padding
included, so the same text gets a slightly different vector beside different batch-mates (a worst
cosine of 0.981 over the probe texts below for the teacher's int8-dynamic graph). Graphs with fixed
scales (fp32, fused, static INT8, OpenVINO) give the same vector up to float rounding.

`worst_batch_cosine` embeds each probe text alone, then inside mixed padded batches (all the probe
texts, in two orders, and a short text beside a long one), and returns the lowest cosine between a
text's two vectors. The export gate records it; the server measures it again when it loads a model
and, below `INVARIANT_COSINE`, runs that model one text per call unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from studentpack.tasks.metrics import row_cosines

INVARIANT_COSINE = 0.9999  # at or above: the model is served in batches

# short and long, plain and odd: a one-word text, a sentence, a list, and a text past 128 tokens
PROBE_TEXTS: tuple[str, ...] = (
    "short",
    "A man is playing a guitar.",
    "The committee postponed its vote on the harbour budget until the engineers had costed the repairs.",
    "Eggs, flour, milk, two lemons, butter; the oven at 180 degrees for twenty-five minutes.",
    " ".join(
        ["The old railway line along the river was closed in the sixties, and for decades the cuttings"]
        + ["filled with brambles while the bridges rusted quietly above the water."] * 6
        + ["Then a group of volunteers cleared it, mile by mile, and it became the county's busiest path."] * 4
    ),
)

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D), the batch padded to its longest row


def _mixes(n: int) -> list[list[int]]:
    """Index orders of the batches each text is embedded in besides alone."""
    every = list(range(n))
    return [every, every[::-1], [0, n - 1], [n - 1, 0, 1]]


def worst_batch_cosine(encode: Encode, texts: Sequence[str] = PROBE_TEXTS) -> float:
    """The lowest cosine between a text embedded alone and the same text inside a mixed batch."""
    alone = np.concatenate([np.asarray(encode([text]), dtype=np.float64) for text in texts])  # (N, D)
    worst = 1.0
    for order in _mixes(len(texts)):
        together = np.asarray(encode([texts[i] for i in order]), dtype=np.float64)  # (len(order), D)
        worst = min(worst, float(row_cosines(together, alone[order]).min()))
    return worst


def is_invariant(worst_cosine: float) -> bool:
    return worst_cosine >= INVARIANT_COSINE
