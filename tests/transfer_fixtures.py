"""Shared pieces for transfer tests: a padded batch, masked positions, and feature extraction."""

from __future__ import annotations

from typing import Any

import torch

from studentpack.distill.data import MaskedBatch, mask_tokens
from studentpack.model import adapter
from studentpack.model.features import FeatureRequest, Features
from studentpack.model.mlm_head import MLMHead
from studentpack.transfer.base import Transfer
from tests.tiny import SENTENCES, make_tokenizer


def padded_batch(n: int = 4, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and mask of real sentences of different lengths (so there is padding)."""
    enc = make_tokenizer()(SENTENCES[offset : offset + n], padding=True, return_tensors="pt")
    assert not bool(enc["attention_mask"].all()), "the test batch must contain padding"
    return enc["input_ids"], enc["attention_mask"]


def masked(ids: torch.Tensor, mask: torch.Tensor, seed: int = 0) -> MaskedBatch:
    tok = make_tokenizer()
    gen = torch.Generator().manual_seed(seed)
    return mask_tokens(ids, mask, tok.all_special_ids, tok.mask_token_id, len(tok), 0.3, gen)


def features(
    model: Any,
    transfer: Transfer,
    side: str,
    ids: torch.Tensor,
    mask: torch.Tensor,
    head: MLMHead | None = None,
    batch: MaskedBatch | None = None,
) -> Features:
    request: FeatureRequest = transfer.student_request() if side == "student" else transfer.teacher_request()
    input_ids = batch.input_ids if batch is not None else ids
    feats, last = adapter.run_encoder(model, input_ids, mask, request)
    if head is not None and batch is not None:
        feats.mlm_logits = head(last.flatten(0, 1)[batch.positions])
        feats.mlm_labels = batch.labels
    return feats


def loss_of(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(terms.values())).sum()
