"""Content hashes tie reports and served models to their files."""

from __future__ import annotations

from pathlib import Path

from studentpack.ground.provenance import hash_directory


def test_an_openvino_graph_change_changes_the_directory_hash(tmp_path: Path) -> None:
    (tmp_path / "model.xml").write_text("<net name='a'/>")
    (tmp_path / "model.bin").write_bytes(b"\x00" * 8)
    before = hash_directory(tmp_path)
    (tmp_path / "model.xml").write_text("<net name='b'/>")  # same weights, another graph
    assert hash_directory(tmp_path) != before


def test_hidden_files_and_logs_do_not_change_it(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"graph")
    before = hash_directory(tmp_path)
    (tmp_path / ".lock").write_text("x")
    (tmp_path / "serve.log").write_text("x")
    assert hash_directory(tmp_path) == before
