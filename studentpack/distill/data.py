"""Corpus -> token chunks -> deterministic batches, and MLM masking.

The batch for (step, rank) is a pure function of the seed, so resuming needs no data-loader state:
the data position is the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from studentpack.text.corpus import PAIR_SEPARATOR
from studentpack.text.segments import segment_ids

_MIN_CHUNK_TOKENS = 4
_TOKENIZE_BATCH = 1000


@dataclass(frozen=True)
class Chunks:
    """Token-id sequences with special tokens, each at most max_length long.

    segments: with isolated packing, each row's line lengths ([CLS] and [SEP] included); else None.
    types: with pairs, each row's token type ids as the tokenizer gives them (0 up to the first side's
    [SEP], 1 after), so teacher and student read a pair as the cross-encoder does; else None.
    """

    sequences: list[list[int]]
    segments: list[list[int]] | None = None
    types: list[list[int]] | None = None

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.sequences)


def tokenize_corpus(
    texts: Sequence[str],
    tokenizer: Any,
    max_length: int,
    pack: bool = False,
    isolate: bool = False,
    pairs: bool = False,
) -> Chunks:
    """Token-id sequences of at most max_length, with [CLS]/[SEP] (or <s>/</s>).

    Unpacked: one line per sequence, long lines split into pieces of max_length - 2 tokens.
    Packed, joined (isolate=False): consecutive lines joined by [SEP] fill each sequence to max_length
    (a line that does not fit continues in the next sequence), so a batch carries no padding but its
    last row's. Lines in one sequence attend to each other, as in BERT's and RoBERTa's pre-training
    on packed text; the teacher sees exactly the same input, so every transfer target stays consistent.
    Packed, isolated: the unpacked sequences ([CLS] line [SEP]) placed end to end in rows of at most
    max_length, with their lengths in `segments`, so the model can keep each line to itself
    (studentpack.text.segments): the inputs of unpacked lines without their padding.
    pairs: each text is two sides joined by PAIR_SEPARATOR (load_corpus(pairs=True)), one line
    [CLS] first [SEP] second [SEP].
    """
    # [CLS] x [SEP] for BERT, <s> x </s> for RoBERTa: both tokenizers name them cls/sep
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    body = max_length - 2
    lines = [line for line in _token_ids(texts, tokenizer, pairs) if line.ids]
    if pack and not isolate:
        return _packed(lines, cls, sep, body)
    sequences: list[_Line] = []
    for line in lines:
        for i in range(0, len(line.ids), body):
            piece = line.cut(i, i + body)
            if len(piece.ids) >= _MIN_CHUNK_TOKENS:
                sequences.append(piece.enclosed(cls, sep))
    return _side_by_side(sequences, max_length) if pack else _chunks([[s] for s in sequences])


@dataclass(frozen=True)
class _Line:
    """One line's token ids, and with pairs their token types (None: all 0, never passed to the model)."""

    ids: list[int]
    types: list[int] | None = None

    def cut(self, start: int, end: int) -> _Line:
        return _Line(self.ids[start:end], None if self.types is None else self.types[start:end])

    def enclosed(self, cls: int, sep: int) -> _Line:
        """[CLS] line [SEP]; the closing [SEP] belongs to the line's last side (type 1 after a pair's second)."""
        types = None if self.types is None else [0, *self.types, self.types[-1] if self.types else 0]
        return _Line([cls, *self.ids, sep], types)


def _chunks(rows: list[list[_Line]], isolated: bool = False) -> Chunks:
    """Rows of lines placed end to end -> Chunks (line lengths kept when each line is isolated)."""
    sequences = [[token for line in row for token in line.ids] for row in rows]
    segments = [[len(line.ids) for line in row] for row in rows] if isolated else None
    typed = any(line.types is not None for row in rows for line in row)
    types = [[t for line in row for t in (line.types or [0] * len(line.ids))] for row in rows] if typed else None
    return Chunks(sequences, segments, types)


def _side_by_side(sequences: list[_Line], max_length: int) -> Chunks:
    """Consecutive sequences concatenated into rows of at most max_length tokens (none is cut)."""
    rows: list[list[_Line]] = []
    width = 0
    for seq in sequences:
        if not rows or width + len(seq.ids) > max_length:
            rows.append([])
            width = 0
        rows[-1].append(seq)
        width += len(seq.ids)
    return _chunks(rows, isolated=True)


def _token_ids(texts: Sequence[str], tokenizer: Any, pairs: bool) -> list[_Line]:
    """Each text's ids without its outer [CLS]/[SEP]; with `pairs`, each text's two sides (PAIR_SEPARATOR)
    keep the separator the tokenizer puts between them ([SEP] for BERT, </s></s> for RoBERTa), and the
    token types it gives them (none for tokenizers without them, as RoBERTa's)."""
    out: list[_Line] = []
    for start in range(0, len(texts), _TOKENIZE_BATCH):
        batch = list(texts[start : start + _TOKENIZE_BATCH])
        if not pairs:
            out.extend(_Line(ids) for ids in tokenizer(batch, add_special_tokens=False)["input_ids"])
            continue
        firsts, seconds = zip(*(t.split(PAIR_SEPARATOR, 1) for t in batch), strict=True)  # each text: 2 sides
        encoded = tokenizer(list(firsts), list(seconds))
        types = encoded.get("token_type_ids") or [None] * len(encoded["input_ids"])
        for ids, side_types in zip(encoded["input_ids"], types, strict=True):  # without the outer [CLS] ... [SEP]
            out.append(_Line(ids[1:-1], None if side_types is None else side_types[1:-1]))
    return out


def _packed(lines: list[_Line], cls: int, sep: int, body: int) -> Chunks:
    """[CLS] line [SEP] line [SEP] ...: the stream of lines cut every `body` tokens, one row per piece."""
    typed = any(line.types is not None for line in lines)
    stream: list[int] = []
    stream_types: list[int] = []
    for line in lines:
        stream.extend(line.ids)
        stream.append(sep)  # each line ends with a separator, as the sentences of BERT's input pairs
        if typed:
            stream_types.extend(line.types or [0] * len(line.ids))
            stream_types.append(line.types[-1] if line.types else 0)
    rows: list[list[_Line]] = []
    for i in range(0, len(stream), body):
        piece = stream[i : i + body]
        closing = [] if piece[-1] == sep else [sep]  # a line cut mid-way still ends its sequence with [SEP]
        if len(piece) >= _MIN_CHUNK_TOKENS:
            types = stream_types[i : i + body]
            row_types = [0, *types, *(types[-1:] * len(closing))] if typed else None
            rows.append([_Line([cls, *piece, *closing], row_types)])
    return _chunks(rows)


class BatchPlan:
    """Which chunks make up the batch of a given step on a given rank.

    Chunks are visited in a fresh seeded permutation each epoch; step s on rank r takes positions
    [(s * world + r) * batch, ... + batch) of the endless stream of epochs.
    """

    def __init__(self, n_chunks: int, batch_size: int, world_size: int, seed: int) -> None:
        self.n = n_chunks
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.n, generator=gen)
        return self._perms[epoch]

    def indices(self, step: int, rank: int) -> list[int]:
        start = (step * self.world_size + rank) * self.batch_size
        out = []
        for pos in range(start, start + self.batch_size):
            epoch, offset = divmod(pos, self.n)
            out.append(int(self._perm(epoch)[offset]))
        return out

    def epoch_of(self, step: int) -> float:
        return step * self.world_size * self.batch_size / self.n


def collate_rows(
    chunks: Chunks, indices: Sequence[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The rows at `indices`: (B, T) ids, (B, T) attention mask, and (B, T) line numbers when isolated."""
    ids, mask = collate([chunks.sequences[i] for i in indices], pad_id)
    if chunks.segments is None:
        return ids, mask, None
    return ids, mask, segment_ids([chunks.segments[i] for i in indices], ids.shape[1])


def collate_types(chunks: Chunks, indices: Sequence[int]) -> torch.Tensor | None:
    """(B, T) token type ids of the rows at `indices`, padded like collate_rows' (0 on padding); None without pairs."""
    if chunks.types is None:
        return None
    return collate([chunks.types[i] for i in indices], pad_id=0)[0]


def collate(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence: (B, T) input ids and (B, T) attention mask."""
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


@dataclass(frozen=True)
class MaskedBatch:
    input_ids: torch.Tensor  # (B, T) with [MASK]/random/kept tokens at chosen positions
    positions: torch.Tensor  # (M,) flat indices into B*T of the chosen positions
    labels: torch.Tensor  # (M,) original ids there


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
    probability: float,
    generator: torch.Generator,
) -> MaskedBatch:
    """BERT masking: choose `probability` of real, non-special tokens; 80% [MASK], 10% random, 10% kept."""
    candidates = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(list(special_ids)))  # (B, T)
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & candidates
    if not chosen.any():  # tiny batches: always learn from at least one position
        first = candidates.flatten().nonzero()[:1]
        chosen.view(-1)[first] = True
    roll = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = random_ids[swap]
    positions = chosen.flatten().nonzero().squeeze(1)  # (M,)
    return MaskedBatch(masked, positions, input_ids.flatten()[positions])
