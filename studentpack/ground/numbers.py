"""Small arithmetic shared by the modules that summarise measurements (no third-party imports)."""

from __future__ import annotations


def ratio(top: float | None, bottom: float | None, digits: int, scale: float = 1.0) -> float | None:
    """`scale * top / bottom` rounded to `digits` places; None when either is unknown or `bottom` is not
    positive (nothing to divide by)."""
    if top is None or bottom is None or bottom <= 0:
        return None
    return round(scale * top / bottom, digits)
