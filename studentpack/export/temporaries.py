"""Leftovers of killed exports: `.NAME.tmp-PID` / `.NAME.old-PID` siblings whose process is gone."""

from __future__ import annotations

import os
from pathlib import Path

from studentpack.ground.atomic import TMP_MARK, remove_tree


def remove_stale_temporaries(final: Path) -> None:
    """Remove `.NAME.tmp-PID` / `.NAME.old-PID` siblings left by killed exports (PID no longer running)."""
    if not final.parent.is_dir():
        return
    prefixes = (f".{final.name}{TMP_MARK}", f".{final.name}.old-")
    for path in final.parent.iterdir():
        for prefix in prefixes:
            pid = path.name[len(prefix) :]
            if path.name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
                remove_tree(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
