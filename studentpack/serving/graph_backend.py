"""Backend over an exported variant directory: ONNX Runtime (model.onnx) or OpenVINO (model.xml),
through `studentpack.engines.graph.open_session`.

The session, its threads and the no-silent-CPU-fallback guard come from the engine; this module only
tokenizes without padding (so the batcher can pad each batch to its own longest row) and runs padded
batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.ground.errors import UserError
from studentpack.model.pooling import l2_normalize_np, mean_pool
from studentpack.serving.backends import Kind, ModelInfo, TextTokenizer, Tokenized, pad_batch


class GraphBackend:
    def __init__(
        self,
        path: Path,
        device: str,
        max_length: int,
        threads: int,
        spin: bool = False,
        max_batch: int = 0,
        release_memory: bool = True,
    ) -> None:
        from studentpack.engines.graph import GraphEncoder, open_session

        options: dict[str, Any] = {"spinning": spin, "release_memory": release_memory}
        if max_batch:  # warm the largest batch too, so the first full batch does not pay for its allocation
            options["warmup_shapes"] = ((max_batch, max_length),)
        self.session = open_session(path, device=device, threads=threads or None, max_length=max_length, **options)
        encoder = GraphEncoder(self.session, str(path))
        kind: Kind = "classifier" if encoder.labels else "embedding"
        outputs = self.session.output_names
        if kind == "classifier":
            self._output, self._pool = "logits", False
        elif "sentence_embedding" in outputs:
            self._output, self._pool = "sentence_embedding", False
        else:  # an older graph with token states only: pool here (masked mean + L2)
            self._output, self._pool = outputs[0], True
        self._inputs = dict(self.session.input_types)
        unknown = sorted(set(self._inputs) - {"input_ids", "attention_mask", "token_type_ids"})
        if unknown:
            raise UserError(f"{path}: the graph wants inputs the server cannot make: {', '.join(unknown)}")
        self._tokenizer = TextTokenizer(self.session.tokenizer, self.session.max_length)
        self.info = ModelInfo(
            kind=kind,
            dim=len(encoder.labels) if encoder.labels else self._width(),
            max_length=self.session.max_length,
            platform=self.session.PLATFORM,
            device=device,
            providers=list(self.session.providers),
            labels=list(encoder.labels),
            source=str(path),
        )

    def _width(self) -> int:
        width = self.session.output_width(self._output)
        if width:
            return width
        return int(self.session.info.get("hidden_size") or self.run([[0, 0]], [None]).shape[1])

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Tokenized:
        return self._tokenizer(texts, pairs)

    def run(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None]) -> np.ndarray:
        batch = pad_batch(ids, types, self._tokenizer.pad_id)
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        feeds: dict[str, np.ndarray] = {
            name: arrays[name].astype(dtype, copy=False) for name, dtype in self._inputs.items()
        }
        out = self.session.run(feeds, [self._output])[self._output]
        if self._pool:
            out = l2_normalize_np(mean_pool(out, batch.attention_mask))  # (B, T, H) -> (B, H)
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        pass
