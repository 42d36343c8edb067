"""HTTP client encoder (placeholder until the serving issue lands)."""

from __future__ import annotations

from typing import Any

from studentpack.errors import UserError


def open_remote(url: str, max_length: int = 128, **kwargs: Any) -> Any:
    raise UserError("served URLs are not supported yet")
