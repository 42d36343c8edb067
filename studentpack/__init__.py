"""studentpack: distil a Transformer encoder into small students, then evaluate, export and serve them."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["UserError", "__version__"]

from studentpack.ground.errors import UserError
