"""The sentence-embedding tail of an encoder directory: mean pooling, an optional Dense, L2 normalisation.

The Dense is sentence-transformers' `models.Dense`, stored as they store it (a `modules.json` entry, and
`config.json` plus `model.safetensors` in its folder), so `SentenceTransformer(dir)` and studentpack give
the same vectors. A student narrower than its teacher ships the projection it learnt onto the teacher's
width there: its embeddings then live where the distillation put them, not in a 256-wide space that was
only ever trained through that projection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studentpack.ground import atomic
from studentpack.ground.errors import UserError
from studentpack.model.pooling import l2_normalize, mean_pool

MODULES_FILE = "modules.json"
DENSE_DIR = "2_Dense"
_DENSE_TYPE = "sentence_transformers.models.Dense"
# activations sentence-transformers may name in a Dense config, by the class path it writes
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "torch.nn.modules.linear.Identity": nn.Identity,
    "torch.nn.modules.activation.Tanh": nn.Tanh,
}


class SentenceHead(nn.Module):
    """(B, T, H) token states and (B, T) mask -> (B, D) unit sentence embeddings; D = H without a Dense."""

    def __init__(self, dense: nn.Linear | None = None, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.dense = dense
        self.activation = activation or nn.Identity()

    def width(self, hidden: int) -> int:
        return self.dense.out_features if self.dense is not None else hidden

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = mean_pool(states, attention_mask)  # (B, T, H) -> (B, H)
        if self.dense is not None:
            pooled = self.activation(self.dense(pooled.to(self.dense.weight.dtype)))  # (B, H) -> (B, D)
        return l2_normalize(pooled)


def load_sentence_head(model_dir: Path, hidden: int) -> SentenceHead:
    """The directory's tail: a Dense when modules.json names one, else pooling and normalisation alone."""
    folder = _dense_folder(model_dir)
    if folder is None:
        return SentenceHead()
    from safetensors.torch import load_file

    config = _read_json(folder / "config.json")
    activation_name = str(config.get("activation_function", "torch.nn.modules.activation.Tanh"))
    if activation_name not in _ACTIVATIONS:
        known = ", ".join(_ACTIVATIONS)
        raise UserError(f"{folder}: Dense activation {activation_name!r} is not supported (known: {known})")
    weights_file = folder / "model.safetensors"
    if not weights_file.is_file():
        raise UserError(f"{folder} has no model.safetensors (pickled Dense weights are not loaded)")
    try:
        weights = load_file(str(weights_file))
    except Exception as exc:
        raise UserError(f"cannot read {weights_file}: {str(exc).splitlines()[0]}") from exc
    weight = weights.get("linear.weight")
    if weight is None or weight.ndim != 2 or weight.shape[1] != hidden:
        shape = None if weight is None else tuple(weight.shape)
        raise UserError(f"{weights_file}: linear.weight has shape {shape}, expected (D, {hidden})")
    bias = weights.get("linear.bias")
    dense = nn.Linear(hidden, weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        dense.weight.copy_(weight)
        if bias is not None:
            dense.bias.copy_(bias)
    return SentenceHead(dense, _ACTIVATIONS[activation_name]()).eval()


def dense_width(model_dir: Path) -> int | None:
    """The Dense's output width from its config alone (no weights read); None without a Dense."""
    folder = _dense_folder(model_dir)
    if folder is None:
        return None
    width = _read_json(folder / "config.json").get("out_features")
    if not isinstance(width, int) or width <= 0:
        raise UserError(f"{folder / 'config.json'}: out_features must be a positive integer")
    return width


def save_dense(model_dir: Path, dense: nn.Linear) -> None:
    """Write `dense` as the directory's Dense module, between pooling and normalisation in modules.json."""
    from safetensors.torch import save_file

    folder = model_dir / DENSE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    state = {"linear.weight": dense.weight.detach().float().cpu().contiguous()}
    if dense.bias is not None:
        state["linear.bias"] = dense.bias.detach().float().cpu().contiguous()
    save_file(state, str(folder / "model.safetensors"))
    atomic.write_json(folder / "config.json", {
        "in_features": dense.in_features, "out_features": dense.out_features, "bias": dense.bias is not None,
        "activation_function": "torch.nn.modules.linear.Identity",
    })  # fmt: skip
    modules_file = model_dir / MODULES_FILE
    if modules_file.is_file():
        modules: list[dict[str, Any]] = _read_json(modules_file)
    else:  # the pipeline studentpack runs (mean pooling, normalisation), so SentenceTransformer reads it alike
        modules = [{"type": "sentence_transformers.models.Transformer", "path": ""},
                   {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},
                   {"type": "sentence_transformers.models.Normalize", "path": "2_Normalize"}]  # fmt: skip
        pooling = {"word_embedding_dimension": dense.in_features, "pooling_mode_mean_tokens": True}
        atomic.write_json(model_dir / "1_Pooling" / "config.json", pooling)
    atomic.write_json(modules_file, _with_dense(modules))


def _with_dense(modules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The module list with one Dense entry before Normalize, renumbered."""
    kept = [m for m in modules if m.get("type") != _DENSE_TYPE]
    at = next((i for i, m in enumerate(kept) if str(m.get("type", "")).endswith(".Normalize")), len(kept))
    ordered = [*kept[:at], {"type": _DENSE_TYPE, "path": DENSE_DIR}, *kept[at:]]
    out = []
    for index, module in enumerate(ordered):
        path_name = str(module.get("path", ""))
        if str(module.get("type", "")).endswith(".Normalize"):
            path_name = f"{index}_Normalize"  # holds no files; the index keeps the usual naming
        out.append({"idx": index, "name": str(index), "path": path_name, "type": module.get("type")})
    return out


def _dense_folder(model_dir: Path) -> Path | None:
    path = model_dir / MODULES_FILE
    if not path.is_file():
        return None
    modules = _read_json(path)
    if not isinstance(modules, list):
        raise UserError(f"{path}: expected a list of modules")
    dense = [m for m in modules if isinstance(m, dict) and m.get("type") == _DENSE_TYPE]
    if not dense:
        return None
    if len(dense) > 1:
        raise UserError(f"{path}: more than one Dense module is not supported")
    folder = (model_dir / str(dense[0].get("path", ""))).resolve()
    if model_dir.resolve() not in folder.parents:
        raise UserError(f"{path}: the Dense path {dense[0].get('path')!r} leaves the model directory")
    return folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
