"""Static students (Model2Vec directories): a sentence is the mean of its tokens' rows, L2-normalised.

Model2Vec (Tulkens & van Dongen, MinishLab, 2024) stores one vector per vocabulary token; encoding is
tokenisation plus a table lookup, with numpy, tokenizers and safetensors only (no torch, no transformers)::

    encoder = open_static(Path("runs/x/static"), max_length=128)
    vectors = encoder.encode(["a sentence", "another one"])   # (2, D) float32

Tokens are cut at `max_length` (no special tokens are added, as in Model2Vec), then the unknown token is
dropped; `truncated` counts the texts that were cut. The serving backend and this encoder both call the
table's `cut` and `pool` (model/static_format.py), so a served vector is the vector `encode` gives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.engines.base import DEFAULT_MAX_LENGTH, LocalEncoder
from studentpack.ground.errors import UserError
from studentpack.model.static_format import MODEL_TYPE, StaticTable, load_static


def is_static_model(path: Path) -> bool:
    """A directory whose config.json says model2vec: a complete one (`is_static_dir`) or one with files
    missing, which `load_static` then names, instead of the Hugging Face loader failing on the config."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


class StaticEncoder(LocalEncoder):
    """TextEncoder over a Model2Vec table (the protocol in `studentpack.engines`); an embedding model."""

    def __init__(self, table: StaticTable, description: str, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.table = table
        self.description = description
        # the caller's limit, capped at the model's own (Model2Vec's config max_length; None: no limit)
        self.max_length = min(max_length, table.max_length) if table.max_length else max_length
        self.labels: list[str] = []
        self.truncated = 0

    def _run_batch(self, firsts: list[str], seconds: list[str] | None, pool: bool) -> np.ndarray:
        # only encode() gets here: with no labels, LocalEncoder.predict refuses (and with it sentence pairs)
        ids, cut = self.table.cut(firsts, self.max_length)
        self.truncated += sum(cut)
        return self.table.pool(ids)


def open_static(path: Path, device: str = "cpu", max_length: int = DEFAULT_MAX_LENGTH, **_: Any) -> StaticEncoder:
    """A StaticEncoder over a Model2Vec directory (what `engines.open_model` calls)."""
    check_cpu(device, path)
    table = load_static(path)
    return StaticEncoder(table, f"{path} (model2vec static, {len(table.rows)} tokens x {table.dim})", max_length)


def check_cpu(device: str, path: Path) -> None:
    """A static model runs on the CPU with numpy: asking for a GPU is an error, never a silent fallback."""
    if device != "cpu":
        raise UserError(f"{path} is a static (Model2Vec) model: it runs on the CPU only, not on {device}")
