"""Training a static table on a corpus against the teacher's sentence embeddings: the idea of Model2Vec's
tokenlearn (MinishLab), in our own form.

The target of a corpus line is the teacher's mean last hidden state over the line, centred on the
corpus's mean and mapped by the PCA basis of the vocabulary's token vectors, so the table's rows and the
targets live in one space and the rows of tokens the corpus never shows stay consistent with the trained ones. The
prediction is the mean of the line's token rows, as the student encodes; the loss is one minus their
cosine (the student's output is L2-normalised, so only directions matter), minimised by Adam.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from studentpack.distill.static import VocabularyTable
from studentpack.model.static_format import unk_token_id

TEACHER_BATCH = 64


@dataclass
class TrainedTable:
    rows: np.ndarray  # (V, D) float32
    lines: int  # corpus lines trained on (those with at least one token)
    tokens: int  # their tokens, as the student sees them
    losses: list[float] = field(default_factory=list)  # per step, the batch's mean loss
    initial_loss: float = 0.0  # over every line, before the first step
    final_loss: float = 0.0  # over every line, after the last
    teacher_seconds: float = 0.0
    train_seconds: float = 0.0


@torch.no_grad()
def teacher_targets(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, progress: bool = True
) -> np.ndarray:
    """(N, H) float32: the teacher's masked mean of its last hidden states for each text (specials included,
    as sentence-transformers' mean pooling and the token pass include them)."""
    from tqdm.auto import tqdm

    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=True)
    ids = [e.ids[: max_length - 1] + e.ids[-1:] if len(e.ids) > max_length else e.ids for e in encodings]
    order = np.argsort([len(row) for row in ids], kind="stable")
    out = np.zeros((len(ids), int(model.config.hidden_size)), dtype=np.float32)
    device = next(model.parameters()).device
    model.eval()
    for start in tqdm(range(0, len(ids), TEACHER_BATCH), desc="teacher", unit="batch", disable=not progress):
        chunk = order[start : start + TEACHER_BATCH]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, T)
        for row, i in enumerate(chunk):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        hidden = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state  # (B, T, H)
        m = mask.to(device).unsqueeze(-1).float()  # (B, T, 1)
        out[chunk] = ((hidden.float() * m).sum(dim=1) / m.sum(dim=1)).cpu().numpy()  # (B, H)
    return out


def student_ids(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Each text's token ids as the student reads it: no specials, cut where the teacher's input was, no unknowns."""
    unk = unk_token_id(tokenizer)
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [[t for t in e.ids[: max_length - 2] if t != unk] for e in encodings]


def _bags(ids: list[list[int]], pick: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat ids (T,) and offsets (B,) of the chosen lines, for embedding_bag."""
    lengths = [len(ids[i]) for i in pick]
    flat = torch.tensor([t for i in pick for t in ids[i]], dtype=torch.long)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)[:-1]]), dtype=torch.long)
    return flat, offsets


def _loss(rows: torch.Tensor, ids: list[list[int]], pick: np.ndarray, targets: torch.Tensor) -> torch.Tensor:
    flat, offsets = _bags(ids, pick)
    predicted = F.embedding_bag(flat, rows, offsets, mode="mean")  # (B, D)
    return (1 - F.cosine_similarity(predicted, targets[pick], dim=1)).mean()


def fit_rows(
    rows: np.ndarray,
    ids: list[list[int]],
    targets: np.ndarray,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    progress: bool = True,
) -> tuple[np.ndarray, list[float], float, float]:
    """Adam on the (V, D) rows so each line's mean row points along its (N, D) target: the trained rows,
    the loss per step, and the loss over every line before and after."""
    from tqdm.auto import tqdm

    table = torch.nn.Parameter(torch.tensor(rows, dtype=torch.float32))  # (V, D)
    goal = torch.tensor(targets, dtype=torch.float32)  # (N, D)
    every = np.arange(len(ids))
    with torch.no_grad():
        initial = float(_loss(table, ids, every, goal))
    optimizer = torch.optim.Adam([table], lr=lr)
    generator = np.random.default_rng(seed)
    order, position, losses = generator.permutation(len(ids)), 0, []
    for _ in tqdm(range(steps), desc="static", unit="step", disable=not progress):
        if position + batch_size > len(order):  # a new epoch in a new order
            order, position = generator.permutation(len(ids)), 0
        pick = order[position : position + batch_size]
        position += batch_size
        loss = _loss(table, ids, pick, goal)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = float(_loss(table, ids, every, goal))
    return table.detach().numpy().astype(np.float32), losses, initial, final


def train_table(
    table: VocabularyTable,
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 256,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> TrainedTable:
    """Train `table.rows` for `steps` Adam steps of `batch_size` lines against the teacher's line embeddings."""
    from studentpack.ground.errors import UserError

    ids = student_ids(tokenizer, texts, max_length)
    usable = [i for i, row in enumerate(ids) if row]
    if not usable:
        raise UserError("the corpus has no line with a token the static student knows")
    ids = [ids[i] for i in usable]
    started = time.perf_counter()
    raw = teacher_targets(model, tokenizer, [texts[i] for i in usable], max_length, progress)  # (N, H)
    teacher_seconds = time.perf_counter() - started
    targets = project_targets(table, raw)
    started = time.perf_counter()
    rows, losses, initial, final = fit_rows(table.rows, ids, targets, steps, lr, batch_size, seed, progress)
    return TrainedTable(rows, len(ids), sum(len(row) for row in ids), losses, initial, final, teacher_seconds,
                        time.perf_counter() - started)  # fmt: skip


def project_targets(table: VocabularyTable, raw: np.ndarray) -> np.ndarray:
    """(N, H) teacher embeddings -> (N, D) in the rows' PCA basis, centred on their own mean: the direction
    every sentence shares tells sentences apart no better than a constant, and pulling the rows towards
    it cost STS-B (300 steps at lr 1e-3: 72.1 centred on the sentences, 70.7 on the tokens' mean, 70.4 plain)."""
    return ((raw - raw.mean(axis=0)) @ table.components.T).astype(np.float32)
