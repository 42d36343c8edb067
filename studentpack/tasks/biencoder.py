"""The bi-encoder protocol for similarity tasks, as sentence-transformers users fine-tune: the sentence
embedding itself is trained so that the cosine of a pair's two embeddings matches the pair's gold
similarity scaled to [0, 1] (sentence-transformers' CosineSimilarityLoss: mean squared error on cosines).

Unlike the cross-encoder (`finetune.py`: both sentences in one input, a regression head), the result is
still a sentence embedder: encoder, pooling, the directory's Dense when there is one, normalisation. So it
is scored like a zero-shot model (cosine of the two embeddings against the gold scores), and `serve`,
`export` and `eval` take the saved directory as they take the student it came from.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from studentpack.engines.pytorch import TorchEncoder, open_torch
from studentpack.ground.errors import UserError
from studentpack.tasks.finetune import TrainLog, TrainSettings, optimise, seed_everything, summarise

# what a sentence-transformers directory carries besides the encoder's own files (the Dense is rewritten)
_SENTENCE_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json", "1_Pooling")


def build(path: Path, device: str, max_length: int, seed: int, allow_pickle: bool = False) -> TorchEncoder:
    seed_everything(seed)
    return open_torch(path, device=device, max_length=max_length, allow_pickle=allow_pickle)


def train(
    encoder: TorchEncoder,
    firsts: Sequence[str],
    seconds: Sequence[str],
    scores: np.ndarray,
    settings: TrainSettings,
    progress: bool = False,
) -> TrainLog:
    """AdamW with linear warm-up and decay over shuffled pairs; MSE between cosines and scores / max score."""
    top = float(np.max(scores))
    if top <= 0:
        raise UserError("the bi-encoder needs gold similarities above 0 (they are scaled by the largest)")
    targets = np.asarray(scores, dtype=np.float32) / top  # (N,) in [0, 1] for non-negative scores
    modules = torch.nn.ModuleList([encoder.model, encoder.head])
    truncated_before = encoder.truncated

    def loss_of(rows: np.ndarray) -> torch.Tensor:
        u = _embed(encoder, [firsts[i] for i in rows])  # (B, D), unit rows
        v = _embed(encoder, [seconds[i] for i in rows])  # (B, D)
        gold = torch.as_tensor(targets[rows], device=u.device)  # (B,)
        return torch.nn.functional.mse_loss((u * v).sum(dim=-1), gold)

    losses, elapsed = optimise(modules, len(firsts), settings, loss_of, progress, "finetune (bi-encoder)")
    return summarise(losses, elapsed, len(firsts) * settings.epochs, encoder.truncated - truncated_before)


def _embed(encoder: TorchEncoder, texts: list[str]) -> torch.Tensor:
    feeds = encoder.tokenize(texts)
    states = encoder.model(**feeds).last_hidden_state  # (B, T, H)
    return encoder.head(states, feeds["attention_mask"]).float()  # (B, D), L2-normalised


def save(encoder: TorchEncoder, source: Path, folder: Path) -> None:
    """The fine-tuned embedder as a sentence-transformers directory like its source (into `folder`)."""
    from studentpack.model import adapter
    from studentpack.model.sentence_head import DENSE_DIR, save_dense

    adapter.save_pretrained(encoder.model, encoder.tokenizer, folder)
    for name in _SENTENCE_FILES:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, folder / name)
        elif item.is_file():
            shutil.copy2(item, folder / name)
    if encoder.head.dense is not None:
        shutil.rmtree(folder / DENSE_DIR, ignore_errors=True)
        save_dense(folder, encoder.head.dense)
