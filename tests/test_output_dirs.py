"""Outputs that cannot be written fail before any work, with one line and exit 2."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from studentpack.cli import main
from tests.tiny import SENTENCES


@pytest.fixture()
def read_only(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield folder
    folder.chmod(stat.S_IRWXU)


def _writable_anyway(path: Path) -> bool:
    """root ignores permission bits: then only a file in the way can make a directory unwritable."""
    return os.access(path, os.W_OK)


@pytest.mark.parametrize("verb", ["distill", "export", "loadtest", "report", "pipeline"])
def test_an_output_under_a_file_or_read_only_dir_fails_first(
    verb: str, tiny_bert_dir: Path, tmp_path: Path, read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(SENTENCES))
    targets = [blocker / "out"] + ([] if _writable_anyway(read_only) else [read_only / "out"])
    for target in targets:
        args = {
            "distill": ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--out", str(target)],
            "export": ["export", str(tiny_bert_dir), "--onnx", "--out", str(target)],
            "loadtest": ["loadtest", "http://127.0.0.1:9", "--out", str(target)],
            "report": ["report", str(tmp_path), "--out", str(target)],
            "pipeline": ["pipeline", "--teacher", str(tiny_bert_dir), "--out", str(target)],
        }[verb]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert ("is a file" in err or "not writable" in err) and "Traceback" not in err, err
