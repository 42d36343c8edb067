"""What handing memory back after each batch costs: `studentpack serve` by default (ONNX Runtime's arena
shrunk after every run, glibc's mmap threshold fixed) against `--keep-memory`, same model, same texts,
one after the other on loopback.

    python benchmarks/keep_memory.py --model runs/pipeline/mha-l3/onnx/int8-dynamic --model runs/.../fp32

Per model and mode: served p50/p95 and texts/s at each concurrency (`studentpack loadtest`, 4 texts per
request so that batch-invariant models batch), and the server's RSS after the load. Writes
benchmarks/results/keep_memory.json. The load generator shares the 2 cores: read the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from studentpack.bench.loadtest import LoadtestOptions, run_loadtest
from studentpack.bench.server_proc import running_server
from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine

ROOT = Path(__file__).resolve().parents[1]
MODES = {"release (default)": [], "--keep-memory": ["--keep-memory"]}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def one(model: Path, options: list[str], users: tuple[int, ...], duration_s: float, log: Path) -> dict[str, Any]:
    with running_server({"m": model}, ["--threads", "1", *options], log) as server:
        load = LoadtestOptions(url=server.url, model="m", endpoint="embeddings", users=users, duration_s=duration_s,
                               warmup_s=3.0, texts_per_request=4)  # fmt: skip
        result = run_loadtest(load, log=lambda line: None)
        rss = _rss_mib(server.proc.pid)
    levels = {str(level["users"]): {"p50_ms": level["latency_ms"]["p50"], "p95_ms": level["latency_ms"]["p95"],
                                    "texts_per_s": level["texts_per_s"], "failures": level["failures"]}
              for level in result["levels"]}  # fmt: skip
    return {"levels": levels, "rss_mib_after_load": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--users", default="1,8")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "keep_memory.json")
    args = parser.parse_args()
    users = tuple(int(u) for u in args.users.split(","))
    result: dict[str, Any] = {"machine": {**machine(), "cpu_class": cpu_class(cpu_flags())}, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model:
            entry = {}
            for mode, options in MODES.items():
                entry[mode] = one(model.resolve(), options, users, args.duration, Path(tmp) / "serve.log")
                print(model, mode, entry[mode], flush=True)
            release, keep = entry["release (default)"]["levels"], entry["--keep-memory"]["levels"]
            entry["throughput_release_over_keep"] = {
                u: round(release[u]["texts_per_s"] / keep[u]["texts_per_s"], 3) for u in release
            }
            result["models"][str(model)] = entry
    atomic.write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
