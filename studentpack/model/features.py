"""Typed features passed from models to transfer losses (no stringly-typed dicts)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class FeatureRequest:
    """What a transfer needs from one model in one step.

    Layer indices are 1-based transformer layers; 0 means the embedding output.
    """

    hidden_layers: frozenset[int] = frozenset()
    qkv_layers: frozenset[int] = frozenset()
    mlm_logits: bool = False

    def __or__(self, other: FeatureRequest) -> FeatureRequest:
        return FeatureRequest(
            self.hidden_layers | other.hidden_layers,
            self.qkv_layers | other.qkv_layers,
            self.mlm_logits or other.mlm_logits,
        )

    def deepest_layer(self) -> int:
        """The highest transformer layer whose output (or Q/K/V) is needed; 0 if none."""
        return max([*self.hidden_layers, *self.qkv_layers, 0])


@dataclass
class Features:
    """What one model produced for one batch.

    attention_mask: (B, T), 1 on real tokens.
    hidden: layer index -> (B, T, H) hidden state after that layer (0 = embeddings).
    qkv: layer index -> (Q, K, V), each (B, T, H) before the split into heads.
    mlm_logits: (M, V) logits at the M masked positions, when asked for.
    mlm_labels: (M,) original token ids at those positions (the same for student and teacher).
    segments: (B, T) line numbers under isolated packing (0 on padding), else None: losses that
    relate tokens to each other or pool them must then stay within a line.
    token_types: (B, T) token type ids of pair inputs (`distill --pairs`), else None (all 0).
    """

    attention_mask: torch.Tensor
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    qkv: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    mlm_logits: torch.Tensor | None = None
    mlm_labels: torch.Tensor | None = None
    segments: torch.Tensor | None = None
    token_types: torch.Tensor | None = None
