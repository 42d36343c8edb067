"""A masked-language-model head (BERT layout): dense -> GELU -> LayerNorm -> vocabulary decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLMHead(nn.Module):
    def __init__(self, hidden: int, vocab: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """(M, H) hidden states at masked positions -> (M, V) logits."""
        return self.decoder(self.norm(F.gelu(self.dense(states))))
