"""`--help` teaches without importing the heavy stack (torch, onnxruntime, transformers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from studentpack.cli import VERBS

HEAVY = (
    "torch",
    "onnxruntime",
    "transformers",
    "onnx",
    "accelerate",
    "starlette",
    "uvicorn",
    "studentpack.serving.app",
    "sklearn",
)
PROBE = """
import sys
from studentpack.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], *[[verb, "--help"] for verb in VERBS]])
def test_help_imports_no_heavy_modules(argv: list[str]) -> None:
    code = PROBE.format(argv=argv, heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: studentpack" in result.stdout
    heavy_line = [line for line in result.stdout.splitlines() if line.startswith("HEAVY:")][-1]
    assert heavy_line == "HEAVY:", f"{argv} imported {heavy_line[6:]}"


def test_no_verb_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from studentpack.cli import main

    assert main([]) == 2
    assert "distill" in capsys.readouterr().out
