"""The engines that run a model, one module each, behind one protocol: `encode(texts)` for embeddings,
`predict(texts)` for classifiers (studentpack.engines.base).

Evaluation, export accuracy gates, the server and the benchmarks all call these, so every number in a
report comes from the same scoring code whatever runs the model:

- a Hugging Face directory           -> engines.pytorch.TorchEncoder
- an exported variant directory      -> engines.graph.GraphEncoder over
                                        engines.ort.OrtSession (model.onnx) or
                                        engines.openvino.OvSession (model.xml)
- a Model2Vec (static) directory     -> engines.static.StaticEncoder (numpy: a table lookup)
- a served URL (http://...)          -> engines.remote.HttpEncoder

`open_model(spec)` picks the engine from the spec (a Model2Vec directory before the Hugging Face
fallback: it has a config.json too). Engine modules import only `engines.base`, never each
other, and this module imports them only when asked for one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.engines.base import (
    DEFAULT_MAX_LENGTH,
    Batch,
    LocalEncoder,
    TextClassifier,
    TextEncoder,
    is_classifier_config,
    length_sorted_batches,
    map_batches,
    scatter_rows,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "Batch",
    "LocalEncoder",
    "TextClassifier",
    "TextEncoder",
    "is_classifier_config",
    "length_sorted_batches",
    "map_batches",
    "open_model",
    "scatter_rows",
]


def open_model(spec: str, device: str = "cpu", max_length: int = DEFAULT_MAX_LENGTH, **kwargs: Any) -> Any:
    """A TextEncoder or TextClassifier for a model directory, an exported variant directory, a static
    (Model2Vec) directory or a URL."""
    from studentpack.ground.errors import UserError

    if spec.startswith(("http://", "https://")):
        from studentpack.engines.remote import open_remote

        return open_remote(spec, max_length=max_length, **kwargs)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"model not found: {spec}")
    from studentpack.engines.graph import is_variant_dir, open_graph

    if is_variant_dir(path):
        return open_graph(path, device=device, max_length=max_length, **kwargs)
    from studentpack.engines.static import is_static_model, open_static

    if is_static_model(path):
        return open_static(path, device=device, max_length=max_length, **kwargs)
    from studentpack.engines.pytorch import open_torch

    return open_torch(path, device=device, max_length=max_length, **kwargs)
