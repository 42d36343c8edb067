"""ONNX Runtime wrapper (placeholder until the export issue lands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studentpack.errors import UserError


def open_onnx(path: Path, device: str = "cpu", max_length: int = 128, **kwargs: Any) -> Any:
    raise UserError("ONNX variants are not supported yet")
