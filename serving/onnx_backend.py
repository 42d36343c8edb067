"""Backend over an exported ONNX variant directory, through `studentpack.engines.ort`.

The session, its providers and the CUDA-fallback guard come from `runtime.open_onnx` (an
`OrtEncoder` with its `OrtSession`); this module only tokenizes without padding (so the batcher
can pad each batch to its own longest row) and runs padded batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from serving.backends import Kind, ModelInfo, TextTokenizer, Tokenized, pad_batch
from studentpack.errors import UserError
from studentpack.pooling import l2_normalize_np

_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OnnxBackend:
    def __init__(self, path: Path, device: str, max_length: int, threads: int, spin: bool = False) -> None:
        from studentpack.engines.ort import OrtEncoder, OrtSession

        self.session = OrtSession.open(
            path, device=device, threads=threads or None, max_length=max_length, spinning=spin
        )
        encoder = OrtEncoder(self.session, str(path))
        kind: Kind = "classifier" if encoder.labels else "embedding"
        outputs = self.session.output_names
        if kind == "classifier":
            self._output, self._pool = "logits", False
        elif "sentence_embedding" in outputs:
            self._output, self._pool = "sentence_embedding", False
        else:  # an older graph with token states only: pool here (masked mean + L2)
            self._output, self._pool = outputs[0], True
        graph_inputs = self.session.session.get_inputs()
        self._inputs = {i.name: _INT_TYPES.get(i.type, np.int64) for i in graph_inputs}
        unknown = sorted(set(self._inputs) - {"input_ids", "attention_mask", "token_type_ids"})
        if unknown:
            raise UserError(f"{path}: the graph wants inputs the server cannot make: {', '.join(unknown)}")
        self._tokenizer = TextTokenizer(self.session.tokenizer, self.session.max_length)
        self.info = ModelInfo(
            kind=kind,
            dim=len(encoder.labels) if encoder.labels else self._width(),
            max_length=self.session.max_length,
            platform="onnxruntime_onnx",
            device=device,
            providers=list(self.session.providers),
            labels=list(encoder.labels),
            source=str(path),
        )

    def _width(self) -> int:
        for out in self.session.session.get_outputs():
            if out.name == self._output and isinstance(out.shape[-1], int):
                return int(out.shape[-1])
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
        feeds = {name: arrays[name].astype(dtype, copy=False) for name, dtype in self._inputs.items()}
        out = self.session.run(feeds, [self._output])[self._output]
        if self._pool:
            mask = batch.attention_mask[..., None].astype(out.dtype)  # (B, T, 1)
            out = l2_normalize_np((out * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9))  # (B, T, H) -> (B, H)
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        pass
