"""Artifacts appear under their final name only when complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studentpack.ground import atomic


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


# --- a writer killed with SIGKILL at arbitrary points ------------------------------------------

WRITER = r"""
import hashlib, json, os, sys
from pathlib import Path
from studentpack.ground import atomic

def blob(size):
    payload = os.urandom(size)
    return len(payload).to_bytes(8, "little") + hashlib.sha256(payload).digest() + payload

big, small = [blob(24 << 20) for _ in range(2)], [blob(8 << 20) for _ in range(2)]  # made once: the loop only writes
target = Path(sys.argv[1])
print("ready", flush=True)
for version in range(10**9):
    atomic.write_bytes(target / "file.bin", big[version % 2])
    with atomic.atomic_dir(target / "dir", overwrite=True) as tmp:
        for name in ("a.bin", "b.bin"):
            (tmp / name).write_bytes(small[version % 2])
        atomic.write_json(tmp / "done.json", {"version": version})
"""


def _whole_blob(path: Path) -> bool:
    import hashlib

    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return len(data) == 40 + size and hashlib.sha256(data[40:]).digest() == data[8:40]


def _check_complete_or_absent(root: Path) -> None:
    """What a reader may see after the kill: whole artifacts under final names, or none; all else temporary."""
    final_file, final_dir = root / "file.bin", root / "dir"
    assert not final_file.exists() or _whole_blob(final_file)
    if final_dir.exists():
        assert sorted(p.name for p in final_dir.iterdir()) == ["a.bin", "b.bin", "done.json"]
        assert _whole_blob(final_dir / "a.bin") and _whole_blob(final_dir / "b.bin")
        json.loads((final_dir / "done.json").read_text())
    for leftover in set(root.iterdir()) - {final_file, final_dir}:
        assert atomic.is_temporary(leftover) or ".old-" in leftover.name, leftover.name


@pytest.mark.parametrize("delay_ms", [0, 5, 10, 20, 35, 50, 80, 120, 170, 230, 300, 400])
def test_a_writer_killed_mid_write_leaves_complete_or_absent(tmp_path: Path, delay_ms: int) -> None:
    import signal
    import subprocess
    import sys
    import time

    with subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            time.sleep(delay_ms / 1000)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    assert child.returncode == -signal.SIGKILL
    _check_complete_or_absent(tmp_path)


def test_atomic_dir_syncs_its_files_and_the_rename(tmp_path: Path, fsynced: list[str]) -> None:
    with atomic.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.bin").write_bytes(b"1")
    assert any(p.endswith("a.bin") for p in fsynced) and fsynced[-1] == str(tmp_path)
