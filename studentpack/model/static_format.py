"""Model2Vec's directory format for static students: one vector per vocabulary token, a sentence is the
mean of its tokens' vectors (then L2-normalised).

A directory holds `model.safetensors` (tensor `embeddings`, (V, D); optional `weights`, (V,), scaling each
row, and `mapping`, (V,), row of each token id), `tokenizer.json` (no padding, no truncation: the
sentence length is `config["max_length"]` tokens), `config.json` (`model_type: "model2vec"`,
`normalize`, `max_length`, `hidden_dim`, ...) and `modules.json` (sentence-transformers' StaticEmbedding
and Normalize), so that `model2vec.StaticModel.from_pretrained(dir)` loads it. Reading and encoding here
need numpy, tokenizers and safetensors only: the serving side runs static students without torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.ground.errors import UserError
from studentpack.model.word_ids import WordIds

MODEL_TYPE = "model2vec"
FILES = ("model.safetensors", "tokenizer.json", "config.json")
GRID_TOKENS = 16_384  # ids pooled in one (texts, longest text) grid: 16 MB of gathered rows at D = 256


def is_static_dir(path: Path) -> bool:
    """A Model2Vec directory: its three files, and a config that says so."""
    if not all((path / name).is_file() for name in FILES):
        return False
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


@dataclass
class StaticTable:
    """What encoding needs: the rows (weights and mapping folded in), the tokenizer, and the config."""

    rows: np.ndarray  # (V, D) float32: row i is token id i's vector
    tokenizer: Any  # tokenizers.Tokenizer, padding and truncation off
    unk_id: int | None  # dropped from every text, as Model2Vec does (word-level vocabularies map much to it)
    normalize: bool
    max_length: int | None  # tokens kept per text (no special tokens are added)
    config: dict[str, Any]
    # the tokenizer's ids through a cache of words, where that split is exact (model/word_ids.py): 4-7x faster
    words: WordIds | None = None
    _padded: np.ndarray = field(init=False, repr=False)  # (V + 1, D): `rows` and a zero row after them

    def __post_init__(self) -> None:
        self._padded = np.zeros((len(self.rows) + 1, self.rows.shape[1]), dtype=np.float32)
        self._padded[:-1] = self.rows
        self.rows = self._padded[:-1]  # a view: one copy of the table in memory

    @property
    def dim(self) -> int:
        return int(self.rows.shape[1])

    def cut(self, texts: Sequence[str], max_length: int | None) -> tuple[list[list[int]], list[bool]]:
        """Texts -> (token ids cut at max_length, unknown tokens kept; whether each text was cut)."""
        if self.words is not None:
            ids = self.words.ids(texts)
        else:
            ids = [e.ids for e in self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]
        if not max_length or max(map(len, ids), default=0) <= max_length:  # the common case: nothing to cut
            return ids, [False] * len(ids)
        return [row[:max_length] for row in ids], [len(row) > max_length for row in ids]

    def pool(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Token ids per text -> (N, D) float32: the mean of each text's rows, the unknown token left out
        (a text with none left gives zeros), L2-normalised when the model says so. Each row depends on
        its own text alone, so a batch's rows equal the rows of its texts run one by one."""
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))  # (N,)
        width = int(lengths.max(initial=0))
        step = max(1, GRID_TOKENS // max(width, 1))  # texts per grid: bounded memory for long texts
        parts = [self._pool_grid(ids[i : i + step], lengths[i : i + step], width) for i in range(0, len(ids), step)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def _pool_grid(self, ids: Sequence[Sequence[int]], lengths: np.ndarray, width: int) -> np.ndarray:
        # the texts' ids laid out in a grid padded with the zero row's id (`blank`), the unknown token
        # mapped to it too: a sum over the grid's columns adds zeros for both, which changes no bit, and
        # adds each text's own rows in its own order whatever the grid's size (numpy sums a non-last axis
        # slice by slice)
        blank = len(self.rows)
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))  # (sum T,)
        grid = np.full((len(ids), width), blank, dtype=np.int64)  # (N, T)
        grid[np.arange(width) < lengths[:, None]] = flat
        if self.unk_id is not None:
            grid[grid == self.unk_id] = blank
        known = np.count_nonzero(grid != blank, axis=1)  # (N,)
        out = self._padded[grid].sum(axis=1)  # (N, T, D) -> (N, D)
        out /= np.maximum(known, 1)[:, None].astype(np.float32)  # zero rows stay zero
        if self.normalize:
            out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-32
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N,) texts -> (N, D) float32, cut at the model's own max_length, as Model2Vec encodes."""
        return self.pool(self.cut(texts, self.max_length)[0])


def unk_token_id(tokenizer: Any) -> int | None:
    """The id of the tokenizer's unknown token (WordPiece, BPE and word-level models name it; Unigram numbers it)."""
    token = getattr(tokenizer.model, "unk_token", None)
    if token is not None:
        found = tokenizer.token_to_id(token)
        return int(found) if found is not None else None
    unk = json.loads(tokenizer.to_str())["model"].get("unk_id")
    return int(unk) if unk is not None else None


def load_static(path: Path) -> StaticTable:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    if not is_static_dir(path):
        raise UserError(f"{path} is not a Model2Vec directory ({', '.join(FILES)} with model_type {MODEL_TYPE!r})")
    try:
        tensors = load_file(str(path / "model.safetensors"))
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except Exception as exc:  # safetensors and tokenizers raise their own types for corrupt files
        raise UserError(f"cannot load the static model in {path}: {str(exc).splitlines()[0]}") from exc
    if "embeddings" not in tensors or tensors["embeddings"].ndim != 2:
        raise UserError(f"{path}/model.safetensors has no (vocabulary, dim) tensor named 'embeddings'")
    rows = tensors["embeddings"].astype(np.float32)  # (V', D); int8 tables widen to float
    if "mapping" in tensors:
        rows = rows[tensors["mapping"].astype(np.int64)]  # (V, D): token id -> its row
    if "weights" in tensors:
        rows = rows * tensors["weights"].astype(np.float32)[:, None]  # (V, D) * (V, 1)
    needed = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1  # ids may skip numbers
    if needed > len(rows):
        raise UserError(f"{path}: the tokenizer has ids up to {needed - 1}, the table {len(rows)} rows")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    max_length = config.get("max_length", 512)
    words = WordIds.for_tokenizer(tokenizer)
    return StaticTable(rows, tokenizer, unk_token_id(tokenizer), bool(config.get("normalize", True)),
                       int(max_length) if max_length else None, config, words)  # fmt: skip


def save_static(
    path: Path, rows: np.ndarray, tokenizer: Any, config: dict[str, Any], weights: np.ndarray | None = None,
    mapping: np.ndarray | None = None,
) -> None:  # fmt: skip
    """Write the directory's files into `path` (the caller makes it, e.g. as an atomic directory)."""
    from safetensors.numpy import save_file

    tensors = {"embeddings": np.ascontiguousarray(rows, dtype=np.float32)}  # (V, D)
    if weights is not None:
        tensors["weights"] = np.ascontiguousarray(weights, dtype=np.float32)  # (V,)
    if mapping is not None:
        tensors["mapping"] = np.ascontiguousarray(mapping, dtype=np.int64)  # (V,): row of each token id
    save_file(tensors, str(path / "model.safetensors"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.save(str(path / "tokenizer.json"), pretty=False)
    full = {"model_type": MODEL_TYPE, "architectures": ["StaticModel"], "normalize": True, "max_length": 512,
            "hidden_dim": int(rows.shape[1]), "embedding_dtype": "float32", **config}  # fmt: skip
    (path / "config.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    modules = [{"idx": 0, "name": "0", "path": ".", "type": "sentence_transformers.models.StaticEmbedding"}]
    if full["normalize"]:
        modules.append({"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"})
    (path / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
