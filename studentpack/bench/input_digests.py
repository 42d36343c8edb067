"""The pipeline's inputs reduced to what a re-run compares: digests of models, corpora and data by content,
a model's shape, and the size of the distillation corpus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from studentpack.bench.pipeline_config import PipelineConfig
from studentpack.ground.errors import UserError


def dir_digest(path: Path) -> str:
    from studentpack.ground.provenance import hash_directory

    return hash_directory(path) if path.is_dir() else "missing"


def corpus_digest(cfg: PipelineConfig) -> list[str]:
    """Files by content, embedded corpora by their text; hub datasets by name."""
    from studentpack.text.corpus import EMBEDDED, load_corpus
    from studentpack.text.sources import EMBEDDED_CORPUS

    out = []
    for spec in cfg.corpus or (EMBEDDED_CORPUS,):
        path = Path(spec).expanduser()
        if spec in EMBEDDED:
            out.append(load_corpus([spec]).sha256)
        elif path.exists():
            out.append(content_digest(path))
        else:
            out.append(spec)
    return out


def content_digest(path: Path) -> str:
    """sha256 over a file's bytes, or over a directory's files (relative names and bytes), in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" if path.is_dir() else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def shape_key(model_dir: Path) -> str:
    """The architecture of a model directory: what its variants' speed depends on (its weights do not)."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"unreadable:{model_dir}"  # never shared
    keys = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "vocab_size")  # fmt: skip
    return json.dumps([config.get(k) for k in keys] + [(model_dir / "2_Dense").is_dir()])


def corpus_chars(cfg: PipelineConfig) -> int:
    """Characters of the distillation corpus (the cost model sizes the teacher cache's fill by it)."""
    from studentpack.text.corpus import load_corpus

    try:
        return sum(len(t) for t in load_corpus(list(cfg.corpus) or None).texts)
    except UserError:
        return 500_000  # a corpus that cannot be read here fails in distill, with its own message
