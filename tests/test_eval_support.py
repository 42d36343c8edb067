"""Helpers shared by the eval tests (no tests here): tiny data files, CLI runner, protocol fakes."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.tiny import SENTENCES


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from studentpack.cli import main

    code = main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    assert out.count("\n") == 1, out  # exactly one JSON object, on one line
    return json.loads(out)


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], sep: str = "\t") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [sep.join(header)] + [sep.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


STSB_HEADER = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
]


def stsb_tsv(path: Path, pairs: Sequence[tuple[str, str, float]]) -> Path:
    rows = [[i, "main", "f", "2012", i, "none", "none", a, b, f"{s:.9f}"] for i, (a, b, s) in enumerate(pairs)]
    return write_table(path, STSB_HEADER, rows)


def sentiment_rows(lengths: Sequence[int]) -> list[tuple[int, str]]:
    """A linearly separable sentiment set: 'good' repeated (1) vs 'bad' repeated (0)."""
    rows = []
    for k in lengths:
        rows.append((1, "the film was " + " ".join(["good"] * k)))
        rows.append((0, "the film was " + " ".join(["bad"] * k)))
    return rows


def sst2_dir(root: Path) -> Path:
    write_table(root / "train.tsv", ["label", "sentence"], sentiment_rows(range(1, 20, 2)))
    write_table(root / "dev.tsv", ["label", "sentence"], sentiment_rows(range(2, 21, 2)))
    return root


def sentence_pairs(n: int = 24) -> list[tuple[str, str]]:
    """Distinct sentence pairs from the tiny vocabulary."""
    pairs = []
    for i in range(n):
        a = SENTENCES[i % len(SENTENCES)]
        b = SENTENCES[(i * 5 + 1) % len(SENTENCES)]
        pairs.append((f"{a} {i % 7}", f"{b} {i}"))
    return pairs


def reference_embeddings(model_dir: Path, texts: Sequence[str], max_length: int = 128) -> np.ndarray:
    """Independent of studentpack: AutoModel, one text at a time, masked mean pooling, L2 norm."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from studentpack.model.adapter import quiet_transformers

    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
            states = model(**enc).last_hidden_state[0]  # (T, H)
            vec = states.mean(dim=0).numpy().astype(np.float64)
            out.append(vec / np.linalg.norm(vec))
    return np.stack(out)


def perturbed_copy(source: Path, target: Path, scale: float, seed: int = 0) -> Path:
    """The same model with Gaussian noise (std = scale x each tensor's std) added to every weight."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(source))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.numel() > 1:
                param.add_(torch.randn(param.shape, generator=generator) * scale * param.std())
    model.save_pretrained(str(target))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(target))
    return target


class AngleEncoder:
    """A TextEncoder whose text 'v=<angle>' embeds as (cos angle, sin angle): cosines are known exactly."""

    description = "angle encoder"
    max_length = 128
    truncated = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        angles = [float(t.split("=", 1)[1]) for t in texts]
        return np.array([[math.cos(a), math.sin(a)] for a in angles], dtype=np.float32)


class TableEncoder:
    """A TextEncoder that looks embeddings up in a dict."""

    description = "table encoder"
    max_length = 128
    truncated = 0

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        rows = np.stack([self.table[t] for t in texts]).astype(np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class KeywordClassifier:
    """A TextClassifier: logits favour 'positive' when the text contains 'good'."""

    description = "keyword classifier"
    max_length = 128
    truncated = 0

    def __init__(self) -> None:
        self.labels = ["negative", "positive"]

    def predict(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        return np.array([[0.0, 1.0] if "good" in t else [1.0, 0.0] for t in texts], dtype=np.float32)
