"""Backend over a static (Model2Vec) directory, through `studentpack.engines.static`: numpy only.

Tokenisation cuts each text at max_length (no special tokens, as Model2Vec encodes); a batch is a mean
of table rows per text, so no padding is made and a row never depends on its batch-mates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studentpack.engines.static import open_static
from studentpack.ground.errors import UserError
from studentpack.serving.backends import ModelInfo, Tokenized

PLATFORM = "model2vec_static"  # the Open Inference Protocol platform string: a token table, run by numpy


class StaticBackend:
    def __init__(self, path: Path, device: str, max_length: int) -> None:
        encoder = open_static(path, device=device, max_length=max_length)  # max_length capped at the model's
        self.table, self.max_length = encoder.table, encoder.max_length
        self.info = ModelInfo(
            kind="embedding",
            dim=self.table.dim,
            max_length=self.max_length,
            platform=PLATFORM,
            device=device,
            providers=["numpy"],
            source=str(path),
        )

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Tokenized:
        if pairs is not None:
            raise UserError(f"{self.info.source} is an embedding model; it scores no sentence pairs")
        ids, cut = self.table.cut(texts, self.max_length)
        return Tokenized(ids, cut)

    def run(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None]) -> np.ndarray:
        """Token ids per text (type ids are ignored: no pairs) -> (B, D) float32."""
        return self.table.pool(ids)

    def close(self) -> None:
        pass
