"""Errors a user can fix. The CLI prints these as one line and exits 2, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (paths, flags, data, config): reported in one line, exit 2."""


class GpuUnavailableError(UserError):
    """A GPU was asked for but none is usable: we never fall back to the CPU silently."""
