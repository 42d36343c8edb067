"""Artifacts appear under their final name only when complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studentpack import atomic


def test_atomic_dir_renames_on_success(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with atomic.atomic_dir(final) as tmp:
        assert not final.exists() and atomic.is_temporary(tmp)
        (tmp / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic.atomic_dir(final) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_overwrite_replaces_whole_and_refuses_without(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(FileExistsError), atomic.atomic_dir(final):
        pass
    with atomic.atomic_dir(final, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_json_is_complete_or_absent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.json"
    atomic.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(TypeError):
        atomic.write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_files_get_the_normal_mode(tmp_path: Path) -> None:
    import os

    atomic.write_text(tmp_path / "a.txt", "a")
    (tmp_path / "b.txt").write_text("b")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "b.txt").st_mode
