"""TextEncoder / TextClassifier over a PyTorch Hugging Face directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from studentpack.engines.base import LocalEncoder, is_classifier_config
from studentpack.ground.cuda import require_torch_cuda
from studentpack.ground.errors import UserError
from studentpack.model import adapter
from studentpack.model.sentence_head import SentenceHead, load_sentence_head
from studentpack.text.sources import sequence_limit


def torch_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `cuda:N` or `auto`; asking for CUDA without one is an error, never a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    require_torch_cuda(name)
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from exc


class TorchEncoder(LocalEncoder):
    """Mean-pooled, L2-normalised embeddings (or logits for classifiers) from a torch model."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        description: str,
        device: torch.device,
        max_length: int,
        labels: list[str] | None = None,
        head: SentenceHead | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.head = (head or SentenceHead()).to(device).eval()  # pooling, the directory's Dense, normalisation
        self.tokenizer = tokenizer
        self.description = description
        self.device = device
        self.max_length = min(max_length, sequence_limit(model.config.to_dict(), tokenizer))
        self.labels = labels or []
        self.truncated = 0

    def tokenize(self, texts: list[str], text_pairs: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Model feeds for a batch (padded to its longest row, cut at max_length); counts truncated rows."""
        full = self.tokenizer(texts, text_pairs, add_special_tokens=True, truncation=False)["input_ids"]
        self.truncated += sum(len(ids) > self.max_length for ids in full)
        enc = self.tokenizer(
            texts, text_pairs, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    @torch.inference_mode()
    def _run_batch(self, firsts: list[str], seconds: list[str] | None, pool: bool) -> np.ndarray:
        feeds = self.tokenize(firsts, seconds)
        out = self.model(**feeds)
        vectors = self.head(out.last_hidden_state, feeds["attention_mask"]) if pool else out.logits  # (B, D) or (B, C)
        return vectors.float().cpu().numpy()


def open_torch(
    path: Path, device: str = "cpu", max_length: int = 128, allow_pickle: bool = False, **_: Any
) -> TorchEncoder:
    config = adapter.check_encoder_dir(path, allow_pickle)  # what the model is, before its tokenizer
    tokenizer = adapter.load_tokenizer(path)
    if is_classifier_config(config):
        model = adapter.load_classifier(path, allow_pickle=allow_pickle)
        id2label = model.config.id2label
        labels = [str(id2label[i]) for i in range(len(id2label))]
    else:
        model = adapter.load_encoder(path, allow_pickle=allow_pickle)
        labels = None
    head = None if labels else load_sentence_head(path, int(model.config.hidden_size))
    return TorchEncoder(model, tokenizer, str(path), torch_device(device), max_length, labels, head)
