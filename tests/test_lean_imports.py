"""The report side reads JSON and draws a plot: it must work where torch and transformers are absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_report import runs  # noqa: F401  (the fixture: a tree of JSON results, no model code)

BLOCK = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocked())
"""


def test_the_report_runs_without_torch_or_transformers(runs: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    code = BLOCK + (
        f"from studentpack.cli import main\nraise SystemExit(main(['report', {str(runs)!r}, '--out', {str(out)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "report.md").is_file() and (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_a_graph_is_served_without_torch_or_transformers(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """The serve-only path: an exported variant answers /v1/embeddings with both libraries blocked, with
    the vectors the PyTorch model gives (fp32 graph: parity 1e-5)."""
    import httpx
    import numpy as np

    from studentpack.engines.pytorch import open_torch
    from tests.test_serve_e2e import export_variant, start
    from tests.tiny import SENTENCES

    variant = export_variant(tiny_bert_dir, tmp_path / "onnx")
    code = BLOCK + (
        "from studentpack.cli import main\n"
        f"raise SystemExit(main(['serve', 'm={variant}', '--port', '0', '--threads', '1']))\n"
    )
    server = start([sys.executable, "-c", code])
    try:
        body = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m", "input": SENTENCES[:4]}, timeout=60)
        assert body.status_code == 200, body.text
        served = np.asarray([row["embedding"] for row in body.json()["data"]])
    finally:
        assert server.stop() == 0, "".join(server.log)[-2000:]
    assert not any("blocked in this test" in line for line in server.log)
    np.testing.assert_allclose(served, open_torch(tiny_bert_dir).encode(SENTENCES[:4]), atol=1e-5)
