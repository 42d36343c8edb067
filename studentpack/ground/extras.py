"""Which install extra brings which package: the core serves exported graphs; the rest is opt-in."""

from __future__ import annotations

import importlib.util

from studentpack.ground.errors import UserError

# a missing top-level module -> the extra that installs it
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "train",
    "transformers": "train",
    "accelerate": "train",
    "onnx": "train",
    "onnxruntime": "serve",
    "locust": "serve",
    "openvino": "openvino",
    "nncf": "openvino",
    "datasets": "hub",
}


def missing_extra_message(module: str) -> str:
    extra = EXTRA_OF_MODULE[module]
    return f"this needs {module}, which this install lacks: pip install 'studentpack[{extra}]'"


def require_modules(what: str, *modules: str) -> None:
    """Refuse, before any work, what needs a package this install lacks (checked without importing it)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise UserError(f"{what}: {missing_extra_message(module)}")
