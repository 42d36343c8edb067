"""A static student's table from a teacher's vocabulary, by Model2Vec's distillation (MinishLab; Tulkens &
van Dongen 2024): every vocabulary token runs through the teacher alone, as `[CLS] token [SEP]`, and its
vector is the mean of the teacher's last hidden states over those three positions; the vectors are
reduced by PCA and each row is scaled by SIF, `a / (a + p)`, with the token's probability `p` estimated
by Zipf's law from its rank in the vocabulary. Tokens of the form `[unusedN]` are skipped, as Model2Vec
skips them (their rows stay zero: no text produces them). A sentence is then the mean of its tokens' rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SKIPPED_TOKENS = re.compile(r"\[unused\d+\]")
TOKEN_BATCH = 256


@dataclass
class VocabularyTable:
    """What the token pass and its reduction give: rows for the student, and the projection that made them."""

    rows: np.ndarray  # (V, D) float32: PCA-reduced, SIF-weighted; zero for skipped tokens
    mean: np.ndarray  # (H,) float64: the token vectors' mean, subtracted before projecting
    components: np.ndarray  # (D, H) float64: the PCA basis, so a teacher vector e maps to (e - mean) @ components.T
    weights: np.ndarray  # (V,) float64: the SIF weight folded into each row (1 where no SIF)
    kept: np.ndarray  # (V,) bool: tokens run through the teacher
    explained_variance: float  # fraction of the token vectors' variance the kept components hold


def kept_tokens(tokenizer: Any) -> np.ndarray:
    """(V,) bool: every token id but Model2Vec's skipped `[unusedN]` placeholders (and ids no token has)."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    kept = np.zeros(max(vocab.values(), default=-1) + 1, dtype=bool)  # ids may skip numbers: a row for each id
    for token, index in vocab.items():
        kept[index] = not SKIPPED_TOKENS.fullmatch(token)
    return kept


def wrap_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special ids the teacher's tokenizer puts around a text (BERT: [CLS] ... [SEP]; RoBERTa: <s> ... </s>)."""
    inner = tokenizer.encode("a", add_special_tokens=False).ids
    outer = tokenizer.encode("a", add_special_tokens=True).ids
    if not inner or inner[0] not in outer:
        return [], []
    at = outer.index(inner[0])
    return outer[:at], outer[at + len(inner) :]


@torch.no_grad()
def token_vectors(model: Any, tokenizer: Any, kept: np.ndarray, progress: bool = True) -> np.ndarray:
    """(V, H) float32: the teacher's mean last hidden state of each kept token run alone; zero rows elsewhere."""
    from tqdm.auto import tqdm

    prefix, suffix = wrap_ids(tokenizer)
    ids = np.flatnonzero(kept)
    out = np.zeros((len(kept), int(model.config.hidden_size)), dtype=np.float32)
    model.eval()
    device = next(model.parameters()).device
    with tqdm(total=len(ids), desc="vocabulary", unit="token", disable=not progress) as bar:
        for start in range(0, len(ids), TOKEN_BATCH):
            chunk = ids[start : start + TOKEN_BATCH]
            rows = [[*prefix, int(t), *suffix] for t in chunk]  # every row the same length: no padding
            input_ids = torch.tensor(rows, dtype=torch.long, device=device)  # (B, T)
            mask = torch.ones_like(input_ids)
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, T, H)
            out[chunk] = hidden.float().mean(dim=1).cpu().numpy()  # (B, H)
            bar.update(len(chunk))
    return out


def fit_pca(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean (H,), components (D, H) with D = min(dim, H, N), and the variance fraction they keep (numpy SVD).
    Each component's sign makes its largest-magnitude score positive, so the result is deterministic."""
    x = vectors.astype(np.float64)  # (N, H)
    mean = x.mean(axis=0)
    centred = x - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # vt: (min(N, H), H)
    keep = min(dim, vt.shape[0])
    components = vt[:keep]  # (D, H)
    scores = centred @ components.T  # (N, D)
    biggest = np.abs(scores).argmax(axis=0)
    components = components * np.sign(scores[biggest, np.arange(keep)])[:, None]
    variance = singular**2
    kept = float(variance[:keep].sum() / variance.sum()) if variance.sum() > 0 else 1.0
    return mean, components, kept


def sif_weights(count: int, coefficient: float) -> np.ndarray:
    """(count,) SIF weights a / (a + p) over Zipf's estimate p ~ 1 / (rank + 1) of the token in rank order
    (the vocabulary's order: WordPiece and BPE vocabularies list frequent tokens first); ones when a = 0."""
    if coefficient <= 0:
        return np.ones(count)
    inverse_rank = 1.0 / np.arange(2, count + 2)
    probability = inverse_rank / inverse_rank.sum()
    return coefficient / (coefficient + probability)


def reduce_vectors(vectors: np.ndarray, kept: np.ndarray, dim: int, sif: float) -> VocabularyTable:
    """PCA over the kept tokens' vectors, then SIF by their rank among the kept tokens (Model2Vec's order)."""
    mean, components, explained = fit_pca(vectors[kept], dim)
    weights = np.ones(len(kept))
    weights[kept] = sif_weights(int(kept.sum()), sif)
    rows = np.zeros((len(kept), len(components)), dtype=np.float32)
    rows[kept] = ((vectors[kept] - mean) @ components.T * weights[kept, None]).astype(np.float32)
    return VocabularyTable(rows, mean, components, weights, kept, explained)


def backend_tokenizer(teacher_dir: Path) -> Any:
    """The teacher's `tokenizers.Tokenizer` (the fast tokenizer's backend), for the token pass and the student."""
    from studentpack.ground.errors import UserError
    from studentpack.model.adapter import load_tokenizer

    tokenizer = load_tokenizer(teacher_dir)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"the tokenizer in {teacher_dir} has no fast (tokenizers) version; a static student needs one")
    backend.no_padding()  # tokenizer.json may pad every text to a fixed length: we pad (and cut) ourselves
    backend.no_truncation()
    return backend


def distil_vocabulary(
    teacher_dir: Path, dim: int = 256, sif: float = 1e-4, device: str = "cpu", progress: bool = True
) -> tuple[VocabularyTable, Any, Any]:
    """The plain static table of the teacher in `teacher_dir` (safetensors only), its tokenizer, and the
    teacher (kept for training the table on a corpus)."""
    from studentpack.model.adapter import load_encoder

    tokenizer = backend_tokenizer(teacher_dir)
    model = load_encoder(teacher_dir, allow_pickle=False, role="teacher").to(device)
    kept = kept_tokens(tokenizer)
    kept[int(model.config.vocab_size) :] = False  # added tokens the teacher has no embedding for
    vectors = token_vectors(model, tokenizer, kept, progress)  # (V, H)
    return reduce_vectors(vectors, kept, dim, sif), tokenizer, model
