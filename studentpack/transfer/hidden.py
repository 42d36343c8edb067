"""HS transfer: per mapped layer pair, match student hidden states to the teacher's.

MSE (or 1 - cosine) per token over real tokens, averaged over pairs. When widths differ, a learned
linear projection per pair maps student states into the teacher's width (TinyBERT-style).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from studentpack.model.features import FeatureRequest, Features
from studentpack.transfer.base import Transfer, masked_token_mean
from studentpack.transfer.layer_map import LayerMap

HiddenLoss = Literal["mse", "cosine"]


class HiddenTransfer(Transfer):
    name = "hs"

    def __init__(self, layer_map: LayerMap, student_width: int, teacher_width: int, loss: HiddenLoss = "mse") -> None:
        super().__init__()
        self.layer_map = layer_map
        self.loss = loss
        self.projections = nn.ModuleDict()
        if student_width != teacher_width:
            for s, t in layer_map.pairs:
                self.projections[f"{s}_{t}"] = nn.Linear(student_width, teacher_width)

    def student_request(self) -> FeatureRequest:
        return FeatureRequest(hidden_layers=frozenset(s for s, _ in self.layer_map.pairs))

    def teacher_request(self) -> FeatureRequest:
        return FeatureRequest(hidden_layers=frozenset(t for _, t in self.layer_map.pairs))

    def _project(self, s: int, t: int, states: torch.Tensor) -> torch.Tensor:
        key = f"{s}_{t}"
        return self.projections[key](states) if key in self.projections else states

    def forward(self, student: Features, teacher: Features) -> dict[str, torch.Tensor]:
        losses = []
        for s, t in self.layer_map.pairs:
            hs = self._project(s, t, student.hidden[s])  # (B, T, H_s) -> (B, T, H_t)
            ht = teacher.hidden[t].to(hs.dtype)  # (B, T, H_t)
            if self.loss == "mse":
                per_token = (hs - ht).pow(2).mean(-1)  # (B, T)
            else:
                per_token = 1.0 - F.cosine_similarity(hs, ht, dim=-1)  # (B, T)
            losses.append(masked_token_mean(per_token, student.attention_mask))
        return {"hs": torch.stack(losses).mean()}

    def sentence_projection(self, student_top: int, teacher_top: int) -> nn.Linear | None:
        found = dict(self.projections.items()).get(f"{student_top}_{teacher_top}")
        return found if isinstance(found, nn.Linear) else None

    def describe(self) -> dict[str, object]:
        return {"layer_map": self.layer_map.describe(), "loss": self.loss, "projected": len(self.projections) > 0}
