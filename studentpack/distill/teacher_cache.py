"""The teacher's features, computed once per corpus row when the same rows come back epoch after epoch.

Without MLM masking (no OD term), what the teacher gives for a row depends on that row alone: its
tokens, its attention mask and, under isolated packing, its line numbers. A run of several epochs
over a small corpus (the default: 150 steps of 16 rows over the embedded corpus's ~1,000 rows is
about 2.4 epochs) therefore recomputes the same teacher forward again and again; on a 2-core CPU that
forward was 37% of an HS step. The cache runs the teacher over every row once, before the first step,
in fixed batches of rows in index order, so a resumed run builds exactly the same cache and stays
bit-identical to an uninterrupted one. Each step then assembles its batch's features from the cache.

Rows are kept unpadded; a batch pads them with zeros, which no transfer reads (every loss masks
padded positions, and relation scores mask padded keys before the softmax).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from studentpack.distill.data import Chunks, collate_rows, collate_types
from studentpack.model.features import FeatureRequest, Features

BUILD_BATCH = 32  # rows per teacher call while filling the cache
WORTH_EPOCHS = 1.5  # below this many visits per row, filling the cache costs more than it saves


@dataclass(frozen=True)
class CachePlan:
    """Whether to cache, and why: recorded in the student's manifest."""

    use: bool
    reason: str
    bytes_needed: int
    epochs: float

    def describe(self) -> dict[str, object]:
        return {"used": self.use, "reason": self.reason, "mb": round(self.bytes_needed / 2**20, 1),
                "epochs": round(self.epochs, 2)}  # fmt: skip


def plan_cache(
    request: FeatureRequest, width: int, chunks: Chunks, rows_seen: int, limit_mb: int, masked_inputs: bool
) -> CachePlan:
    """Cache when inputs are unmasked, each row comes back at least WORTH_EPOCHS times, and it fits."""
    vectors_per_token = len(request.hidden_layers) + 3 * len(request.qkv_layers)
    needed = 4 * width * vectors_per_token * chunks.tokens  # float32
    epochs = rows_seen / max(1, len(chunks.sequences))
    if masked_inputs:
        return CachePlan(False, "the OD term masks tokens afresh every step", needed, epochs)
    if limit_mb <= 0:
        return CachePlan(False, "turned off (teacher_cache_mb 0)", needed, epochs)
    if epochs < WORTH_EPOCHS:
        return CachePlan(False, f"each row is seen {epochs:.2f} times (< {WORTH_EPOCHS})", needed, epochs)
    if needed > limit_mb * 2**20:
        return CachePlan(False, f"needs {needed / 2**20:.0f} MB > teacher_cache_mb {limit_mb}", needed, epochs)
    return CachePlan(True, f"each row is seen {epochs:.2f} times", needed, epochs)


@dataclass
class _Row:
    hidden: dict[int, torch.Tensor]  # layer -> (L, H)
    qkv: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # layer -> 3 x (L, H)


class TeacherCache:
    """Row index -> the teacher's features for that row, without padding."""

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows

    @classmethod
    def build(
        cls,
        teacher: Callable[..., Features],
        chunks: Chunks,
        pad_id: int,
        device: torch.device,
        progress: Callable[[int], None] = lambda rows: None,
    ) -> TeacherCache:
        rows: list[_Row] = []
        empty = torch.zeros(0, dtype=torch.long, device=device)
        for start in range(0, len(chunks.sequences), BUILD_BATCH):
            indices = list(range(start, min(start + BUILD_BATCH, len(chunks.sequences))))
            ids, mask, segments = collate_rows(chunks, indices, pad_id)
            lines = segments.to(device) if segments is not None else None
            types = collate_types(chunks, indices)
            features = teacher(ids.to(device), mask.to(device), empty, empty, lines,
                               types.to(device) if types is not None else None)  # fmt: skip
            lengths = mask.sum(dim=1).tolist()
            for row, length in enumerate(lengths):
                rows.append(
                    _Row(
                        hidden={k: v[row, :length].clone() for k, v in features.hidden.items()},  # (L, H)
                        qkv={k: tuple(x[row, :length].clone() for x in t) for k, t in features.qkv.items()},  # type: ignore[misc]
                    )
                )
            progress(len(indices))
        return cls(rows)

    def features(
        self,
        indices: Sequence[int],
        attention_mask: torch.Tensor,
        segments: torch.Tensor | None,
        token_types: torch.Tensor | None = None,
    ) -> Features:
        """The batch of rows `indices`, padded like `attention_mask` (B, T); segments and token types as the
        batch's own (the student reads them from here)."""
        rows = [self.rows[i] for i in indices]
        width = attention_mask.shape[1]
        first = rows[0]
        hidden = {layer: _padded([r.hidden[layer] for r in rows], width) for layer in first.hidden}
        qkv = {
            layer: tuple(_padded([r.qkv[layer][part] for r in rows], width) for part in range(3)) for layer in first.qkv
        }
        empty = torch.zeros(0, dtype=torch.long, device=attention_mask.device)
        return Features(attention_mask=attention_mask, hidden=hidden, qkv=qkv, segments=segments,  # type: ignore[arg-type]
                        token_types=token_types, mlm_labels=empty)  # fmt: skip


def _padded(states: list[torch.Tensor], width: int) -> torch.Tensor:
    """B tensors of (L_i, H) -> (B, width, H), zeros past each L_i."""
    out = states[0].new_zeros((len(states), width, states[0].shape[1]))
    for row, state in enumerate(states):
        out[row, : state.shape[0]] = state
    return out
