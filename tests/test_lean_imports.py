"""The report side reads JSON and draws a plot: it must work where torch and transformers are absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCK = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocked())
"""


def test_the_report_runs_without_torch_or_transformers(tmp_path: Path) -> None:
    code = BLOCK + (
        "import studentpack.bench.report, studentpack.bench.markdown, studentpack.commands.report\n"
        "from studentpack.cli import main\n"
        f"raise SystemExit(main(['report', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "blocked in this test" not in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 2), done.stderr[-2000:]  # an empty directory is a clear user error
