"""Soak (slow): real locust, 64 users, against `studentpack serve` over a tiny ONNX model on loopback
for SOAK_SECONDS (default 300). Zero failures, answers spot-checked against the model in-process
while the load runs, RSS at the end within a small margin of its level after warm-up, and the queue
empty afterwards. Figures are printed (run with -s) for the README's Reliability section."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from studentpack.engines import open_model
from tests.test_serve_e2e import cli, export_variant, start
from tests.test_serve_load import metric
from tests.tiny import SENTENCES

pytestmark = pytest.mark.slow

SOAK_SECONDS = int(os.environ.get("SOAK_SECONDS", "300"))
WARMUP_S = 30
USERS = 64
RSS_MARGIN = 1.10  # the end may be at most 10% (plus 16 MiB of allocator noise) over the warmed-up level


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_soak_64_users(tmp_path: Path, tiny_bert_dir: Path) -> None:
    if importlib.util.find_spec("locust") is None:  # never import it here: it monkey-patches this process
        pytest.skip("locust is not installed (pip install -e '.[bench]')")
    onnx = export_variant(tiny_bert_dir, tmp_path / "onnx")
    server = start(cli(f"tiny={onnx}", "--port", "0", "--threads", "1", "--log-level", "warning"))
    reference = open_model(str(onnx))
    rss: list[tuple[float, int]] = []
    checks: list[float] = []  # max |difference| of each spot check
    stop = threading.Event()

    def watch() -> None:
        started = time.monotonic()
        with httpx.Client(timeout=60) as client:
            while not stop.wait(5):
                rss.append((time.monotonic() - started, rss_bytes(server.process.pid)))
                texts = [SENTENCES[len(checks) % len(SENTENCES)], SENTENCES[(3 * len(checks)) % len(SENTENCES)]]
                response = client.post(f"{server.url}/v1/embeddings", json={"model": "tiny", "input": texts})
                assert response.status_code == 200, response.text
                got = np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
                checks.append(float(np.abs(got - reference.encode(texts)).max()))

    watcher = threading.Thread(target=watch)
    out = tmp_path / "soak"
    try:
        watcher.start()
        load = subprocess.run(
            [sys.executable, "-m", "studentpack", "loadtest", server.url, "--model", "tiny", "--users", str(USERS),
             "--warmup", str(WARMUP_S), "--duration", str(SOAK_SECONDS), "--max-requests", "100000000",
             "--out", str(out)],
            capture_output=True, text=True, timeout=SOAK_SECONDS + WARMUP_S + 600,
        )  # fmt: skip
        stop.set()
        watcher.join(60)
        assert load.returncode == 0, load.stderr[-3000:]
        with httpx.Client(timeout=60) as client:
            page = client.get(f"{server.url}/metrics").text
        assert metric(page, "studentpack_queue_depth") == 0
        assert metric(page, "studentpack_requests_total", status="500") == 0
    finally:
        stop.set()
        assert server.stop() == 0, "".join(server.log)
    result: dict[str, Any] = json.loads((out / "loadtest.json").read_text())
    (level,) = result["levels"]
    assert level["failures"] == 0 and level["ok"] == level["requests"] > 0
    assert checks and max(checks) < 1e-4, checks
    warmed = [r for t, r in rss if t >= WARMUP_S]
    assert len(warmed) >= 2
    assert warmed[-1] <= warmed[0] * RSS_MARGIN + (16 << 20), [r >> 20 for _, r in rss]
    print(f"\nsoak: {level['requests']} requests by {USERS} users over {level['seconds']:.0f} s, "
          f"{level['failures']} failures, {len(checks)} spot checks (max |diff| {max(checks):.2g}), RSS "
          f"{warmed[0] >> 20} MiB after warm-up -> {warmed[-1] >> 20} MiB at the end, queue empty after")  # fmt: skip
