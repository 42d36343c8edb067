"""The parts of studentpack import in one direction: ground <- text <- model <- the rest.

Ground (atomic writes, errors, provenance, CPU facts) is what every part may use, so it may use no
other part; the text side knows nothing of models; the model side knows texts but not training,
exporting or serving. A violation makes a cycle waiting to happen, or drags heavy imports into the
lean serving side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "studentpack"
MAY_IMPORT = {
    "ground": {"ground"},
    "text": {"ground", "text"},
    "model": {"ground", "text", "model"},
}


def _studentpack_imports(file: Path) -> set[str]:
    """The first part below studentpack of every import in the file, at any depth (lazy ones too)."""
    parts = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "studentpack" and len(pieces) > 1:
                parts.add(pieces[1])
    return parts


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_part_imports_only_the_parts_below_it(part: str) -> None:
    wrong = {}
    for file in sorted((PACKAGE / part).glob("*.py")):
        extra = _studentpack_imports(file) - MAY_IMPORT[part]
        if extra:
            wrong[file.name] = sorted(extra)
    assert not wrong, f"studentpack.{part} may import only {sorted(MAY_IMPORT[part])}: {wrong}"


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    file = tmp_path / "bad.py"
    file.write_text("def f():\n    from studentpack.export.presets import VARIANTS\n")
    assert _studentpack_imports(file) == {"export"}
