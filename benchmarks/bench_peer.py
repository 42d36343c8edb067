"""A peer beside our server: `studentpack loadtest` against Infinity (infinity-emb, torch engine) and
`studentpack serve`, both serving the packaged teacher in PyTorch on loopback, with the same texts and
the same concurrency levels, one after the other.

Infinity is not a dependency of studentpack: install it in its own environment (it pins an older
transformers and numpy) and name its executable, e.g.

    python3 -m venv /tmp/inf && /tmp/inf/bin/pip install torch==2.13.0 "infinity-emb[server,torch]==0.0.78"
    python benchmarks/bench_peer.py --infinity /tmp/inf/bin/infinity_emb

Writes benchmarks/results/bench_peer.json. Both servers get 2 threads' worth of the same 2 cores, and the
load generator shares them: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from studentpack.bench.loadtest import LoadtestOptions, run_loadtest
from studentpack.bench.server_proc import running_server
from studentpack.ground import atomic
from studentpack.ground.provenance import machine, package_versions
from studentpack.text.sources import packaged_teacher_dir

ROOT = Path(__file__).resolve().parents[1]
NAME = "teacher"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _levels(url: str, users: tuple[int, ...], duration_s: float, texts: str) -> dict[str, Any]:
    options = LoadtestOptions(url=url, model=NAME, endpoint="embeddings", users=users, duration_s=duration_s,
                              warmup_s=2.0, texts=texts)  # fmt: skip
    result = run_loadtest(options, log=print)
    return {
        "server": result["target"]["server"],
        "levels": {
            str(level["users"]): {
                "p50_ms": level["latency_ms"]["p50"],
                "p95_ms": level["latency_ms"]["p95"],
                "texts_per_s": level["texts_per_s"],
                "failures": level["failures"],
            }
            for level in result["levels"]
        },
    }


def _infinity(executable: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    args = [executable, "v2", "--model-id", str(packaged_teacher_dir()), "--served-model-name", NAME,
            "--engine", "torch", "--device", "cpu", "--port", str(port), "--url-prefix", "/v1",
            "--batch-size", "32", "--no-compile"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"infinity exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.kill()
    raise SystemExit(f"infinity did not become ready; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--infinity", required=True, help="the infinity_emb executable (its own environment)")
    parser.add_argument("--users", default="1,8")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--texts", default="embedded:heldout")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_peer.json")
    args = parser.parse_args()
    users = tuple(int(u) for u in args.users.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    results: dict[str, Any] = {"benchmark": "bench_peer", "model": "packaged all-MiniLM-L6-v2 (PyTorch)",
                               "texts": args.texts, "users": users, "duration_s": args.duration}  # fmt: skip
    port = _free_port()
    peer = _infinity(args.infinity, port, work / "infinity.log")
    try:
        results["infinity"] = _levels(f"http://127.0.0.1:{port}", users, args.duration, args.texts)
    finally:
        peer.send_signal(signal.SIGINT)
        peer.wait(60)
    with running_server({NAME: packaged_teacher_dir()}, ["--threads", "2"], work / "serve.log") as server:
        results["studentpack"] = _levels(server.url, users, args.duration, args.texts)
    results["machine"] = machine()
    results["versions"] = package_versions()
    atomic.write_json(args.out, results)
    for name in ("infinity", "studentpack"):
        row = results[name]
        levels = [
            f"{u} users p50 {v['p50_ms']:.2f} ms, {v['texts_per_s']:.0f} texts/s" for u, v in row["levels"].items()
        ]
        print(f"{name:12s} ({row['server']}):", " | ".join(levels))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
