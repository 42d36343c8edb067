"""Write artifacts so that a crash or a kill never leaves a half-written one that looks whole.

Everything is written under a temporary sibling name and renamed into place only when complete
(rename is atomic within one filesystem).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def _tmp_sibling(final: Path) -> Path:
    return final.parent / f".{final.name}{TMP_MARK}{os.getpid()}"


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file atomically: temp file in the same directory, fsync, rename.

    The file gets the mode a plain open() would give it (mkstemp's temp files are owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        os.fchmod(fd, _default_file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)  # the rename itself survives a power cut only once the directory is synced
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (names created, renamed or removed in it) to disk."""
    _fsync_path(path, os.O_RDONLY | os.O_DIRECTORY)


def fsync_tree(path: Path) -> None:
    """Flush every file under `path`, then its directories, before the tree is renamed into place."""
    for root, _, files in os.walk(path):
        for name in files:
            _fsync_path(Path(root) / name)
        fsync_dir(Path(root))


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes `final` only if the block completes.

    With `overwrite`, an existing `final` is replaced: moved aside, the new one renamed in, the old
    one deleted. A kill between the two renames leaves `final` absent (never partial) and the old
    complete copy under a `.NAME.old-PID` sibling; tests/test_atomic.py kills writers to check it.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    remove_tree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_tree(tmp)
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        remove_tree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        remove_tree(old)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)


def is_temporary(path: Path) -> bool:
    """True for the temporary names this module uses (useful for cleanup and tests)."""
    return path.name.startswith(".") and TMP_MARK in path.name


def check_writable_dir(path: str | Path, what: str = "output directory") -> None:
    """Fail before any work when `path` could not be created or written (a file, or a read-only parent)."""
    from studentpack.ground.errors import UserError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UserError(f"{what} {target} is a file")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {target}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {target}: {probe} is not writable")
