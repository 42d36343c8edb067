"""The texts a load test sends: a real text set, sampled with a fixed seed, so the length mix is real."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from studentpack.ground.errors import UserError

DEFAULT_TEXTS = "embedded:heldout"  # held-out general English sentences (no labels needed)


@dataclass(frozen=True)
class RequestTexts:
    source: str
    texts: list[str]
    seed: int

    def describe(self) -> dict[str, Any]:
        words = np.array([len(t.split()) for t in self.texts], dtype=np.float64)
        return {
            "source": self.source,
            "texts": len(self.texts),
            "seed": self.seed,
            "words": {
                "mean": round(float(words.mean()), 2),
                "p50": float(np.percentile(words, 50)),
                "p95": float(np.percentile(words, 95)),
                "max": int(words.max()),
            },
        }


def load_request_texts(spec: str | None, limit: int, seed: int, column: str | None = None) -> RequestTexts:
    """`limit` texts drawn (seeded) from a data file or directory, a corpus spec, or the embedded default.

    Data files are read like `studentpack eval --data` (the eval split of a directory; `text`,
    `sentence` or both STS-B sentences); `embedded:pydoc` and plain-text corpus files also work.
    """
    from studentpack.text.corpus import EMBEDDED

    spec = spec or DEFAULT_TEXTS
    if limit < 1:
        raise UserError("the request text pool needs at least 1 text")
    if spec in EMBEDDED:
        from studentpack.text.corpus import load_corpus

        texts, source = load_corpus([spec]).texts, spec
    else:
        from studentpack.tasks import data as D
        from studentpack.tasks import sets

        located = D.locate(spec, "eval")
        table = D.read_table(located, "eval")
        texts, source = sets.plain_texts(table, sets.Columns(text=column)).texts, table.source
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError(f"{spec} holds no text to send")
    order = np.random.default_rng(seed).permutation(len(texts))[:limit]
    return RequestTexts(source, [texts[int(i)] for i in order], seed)
