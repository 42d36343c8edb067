"""Optional API key: `Authorization: Bearer <key>`, compared in constant time. Health checks stay open."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from studentpack.ground.errors import UserError
from studentpack.ground.protocol import API_KEY_ENV

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


def load_api_key(path: str | None) -> str | None:
    """The key from a file (first line), else from $STUDENTPACK_API_KEY, else None (no auth).

    Never from a command-line flag: those show in `ps` and shell history.
    """
    if path:
        file = Path(path).expanduser()
        try:
            key = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"cannot read the API key file {file}: {exc.strerror}") from exc
        if not key:
            raise UserError(f"the API key file {file} is empty")
        return key
    key = os.environ.get(API_KEY_ENV, "").strip()
    return key or None


class ApiKey:
    def __init__(self, key: str) -> None:
        self._expected = f"Bearer {key}".encode()

    def allows(self, authorization: str | None) -> bool:
        given = (authorization or "").encode("utf-8", "replace")
        return hmac.compare_digest(given, self._expected)
