"""The trainable side (student + transfer parameters + MLM head) and the frozen teacher side."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from studentpack.distill.plan import RunPlan
from studentpack.model import adapter
from studentpack.model.features import FeatureRequest, Features
from studentpack.model.mlm_head import MLMHead
from studentpack.transfer.base import Transfer
from studentpack.transfer.embedding import EmbeddingTransfer
from studentpack.transfer.hidden import HiddenTransfer
from studentpack.transfer.output import OutputTransfer
from studentpack.transfer.relations import RelationTransfer


def build_transfers(plan: RunPlan) -> dict[str, Transfer]:
    cfg = plan.config
    transfers: dict[str, Transfer] = {}
    for method in cfg.methods():
        if method == "od":
            transfers["od"] = OutputTransfer(cfg.temperature, cfg.mlm_weight)
        elif method == "hs":
            assert plan.layer_map is not None
            t_width = int(plan.teacher_config["hidden_size"])
            transfers["hs"] = HiddenTransfer(plan.layer_map, plan.shape.hidden, t_width, cfg.hs_loss)
        elif method == "emb":
            t_layers, t_width = int(plan.teacher_config["num_hidden_layers"]), int(plan.teacher_config["hidden_size"])
            transfers["emb"] = EmbeddingTransfer(plan.shape.layers, t_layers, plan.shape.hidden, t_width)
        elif method == "mha":
            assert plan.teacher_layer is not None and plan.relation_heads is not None
            transfers["mha"] = RelationTransfer(plan.shape.layers, plan.teacher_layer, plan.relation_heads)
        else:
            raise ValueError(f"unknown method {method}")
    return transfers


# loss term -> the config field weighting it (a term is named after its method, or method_part)
_TERM_WEIGHTS = {"mha": "mha_weight", "hs": "hs_weight", "od": "od_weight", "mlm": "od_weight", "emb": "emb_weight"}


def sentence_projection(transfers: nn.ModuleDict, plan: RunPlan) -> tuple[str, nn.Linear] | None:
    """The projection a narrower student ships as its Dense: EMB's (trained on the pooled embedding itself),
    else HS's for the pair (top student layer, top teacher layer); None when widths match or none maps the tops."""
    present = dict(transfers.items())
    for name in ("emb", "hs"):
        transfer = present.get(name)
        if isinstance(transfer, Transfer):
            found = transfer.sentence_projection(plan.shape.layers, plan.teacher_layers)
            if found is not None:
                return name, found
    return None


def term_weight(plan: RunPlan, term: str) -> float:
    """Weight of a named loss term by the method that produced it (mha_qq -> mha_weight, mlm -> od_weight)."""
    family = term.split("_", 1)[0]
    if family not in _TERM_WEIGHTS:
        raise ValueError(f"loss term {term!r} has no weight: name it after its method ({', '.join(_TERM_WEIGHTS)})")
    return float(getattr(plan.config, _TERM_WEIGHTS[family]))


def merged_request(requests: list[FeatureRequest]) -> FeatureRequest:
    merged = FeatureRequest()
    for request in requests:
        merged = merged | request
    return merged


class StudentBundle(nn.Module):
    """Everything that learns. Its forward returns the named loss terms for one batch."""

    def __init__(self, encoder: Any, transfers: dict[str, Transfer], head: MLMHead | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.transfers = nn.ModuleDict(transfers)
        self.head = head
        self.request = merged_request([t.student_request() for t in transfers.values()])

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        attention_mask: torch.Tensor,  # (B, T)
        mlm_positions: torch.Tensor,  # (M,) flat indices into B*T
        teacher: Features,
    ) -> dict[str, torch.Tensor]:
        features, last = adapter.run_encoder(
            self.encoder, input_ids, attention_mask, self.request, teacher.segments, teacher.token_types
        )
        if self.head is not None:
            features.mlm_logits = self.head(last.flatten(0, 1)[mlm_positions])  # (B*T, H) -> (M, V)
            features.mlm_labels = teacher.mlm_labels
        terms: dict[str, torch.Tensor] = {}
        for transfer in self.transfers.values():
            terms.update(transfer(features, teacher))
        return terms


class TeacherRunner:
    """Frozen teacher, cut above the deepest layer any loss reads, run without autograd."""

    def __init__(self, encoder: Any, head: MLMHead | None, request: FeatureRequest, keep_layers: int) -> None:
        adapter.truncate_layers(encoder, keep_layers)
        self.encoder = encoder.eval().requires_grad_(False)
        self.head = head.eval().requires_grad_(False) if head is not None else None
        self.request = request

    def to(self, device: torch.device) -> TeacherRunner:
        self.encoder.to(device)
        if self.head is not None:
            self.head.to(device)
        return self

    @torch.no_grad()
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mlm_positions: torch.Tensor,
        mlm_labels: torch.Tensor,
        segments: torch.Tensor | None = None,  # (B, T) line numbers under isolated packing
        token_types: torch.Tensor | None = None,  # (B, T) pair inputs' token types
    ) -> Features:
        features, last = adapter.run_encoder(
            self.encoder, input_ids, attention_mask, self.request, segments, token_types
        )
        if self.head is not None:
            features.mlm_logits = self.head(last.flatten(0, 1)[mlm_positions])  # (M, V)
        features.mlm_labels = mlm_labels
        return features
