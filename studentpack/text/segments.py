"""Isolated packing: several lines share one row, yet each is encoded as if it were alone.

A row holds [CLS] line [SEP] [CLS] line [SEP] ...; `segments` (B, T) numbers each token's line
from 1 (0 on padding). The model then gets a (B, 1, T, T) mask that lets a token attend only within
its own line, and positions that restart at each [CLS], so every line's hidden states are those of
the line run on its own (tests/test_segments.py checks it), without the padding a batch of short
lines would carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from studentpack.text.sources import ROBERTA_FAMILY


def segment_ids(lengths: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    """Per-row line lengths -> (B, width) line numbers: 1, 1, .., 2, 2, .., 0 on padding."""
    out = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, row_lengths in enumerate(lengths):
        start = 0
        for number, length in enumerate(row_lengths, start=1):
            out[row, start : start + length] = number
            start += length
    return out


def same_segment(segments: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T, T): True where query and key lie in the same line.

    Padding shares "line 0" with padding only, so no row is fully masked (no NaN from a softmax)
    and no real token ever sees padding or another line.
    """
    return segments[:, :, None] == segments[:, None, :]


def positions_within(segments: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T): each token's offset from the first token of its line."""
    index = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)  # (B, T)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]  # a new line begins where the number changes
    first = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values  # (B, T)
    return index - first


def encoder_inputs(model: Any, segments: torch.Tensor) -> dict[str, torch.Tensor]:
    """attention_mask (B, 1, T, T) and position_ids (B, T) that keep each line to itself.

    SDPA takes a boolean mask (True: attend); the eager kernel adds the mask to its scores, so it
    gets 0 or the dtype's most negative value. RoBERTa-family models count positions from
    padding_idx + 1, so their restarted positions are shifted the same way.
    """
    allowed = same_segment(segments)[:, None]  # (B, 1, T, T)
    implementation = getattr(model.config, "_attn_implementation", "eager")
    if implementation == "sdpa":
        mask = allowed
    elif implementation == "eager":
        dtype = model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
        mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    else:
        raise ValueError(f"isolated packing needs the sdpa or eager attention kernel, not {implementation}")
    positions = positions_within(segments)
    if getattr(model.config, "model_type", "") in ROBERTA_FAMILY:
        positions = positions + model.config.pad_token_id + 1
    return {"attention_mask": mask, "position_ids": positions}


def segment_means(states: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Mean over each line's tokens: (B, T, H) -> (N, H), lines in row-major order (padding skipped)."""
    members = F.one_hot(segments, int(segments.max()) + 1)[..., 1:].to(states.dtype)  # (B, T, K)
    sums = torch.einsum("btk,bth->bkh", members, states)  # (B, K, H)
    counts = members.sum(dim=1)  # (B, K)
    present = counts > 0  # rows hold different numbers of lines
    return sums[present] / counts[present].unsqueeze(-1)  # (N, H)
