"""Serving a static (Model2Vec) student: what bounds a server whose model is a table lookup.

A static student's compute per text is a tokenisation and a mean over a few table rows (microseconds),
so its served throughput says how fast the server and the load generator are, not the model. This
measures, on the same SST-2 dev sentences:

1. In process: `encode` in batches of 32 (texts/s), and the server's engine path for one text
   (`StaticBackend.tokenize` + `run`, what one 1-text request computes), p50 in microseconds.
2. Served: `studentpack serve DIR` on loopback, driven by `studentpack loadtest` (one text per request,
   closed loop) at each --users level, one loadtest call per level, once with server and load generator
   sharing the cores and once split (server on CPU 0, load generator on CPU 1). Beside the client's figures
   (texts/s, p50/p95/p99, the load generator's CPU share, the server's mean batch size and batch
   inference time from /metrics) the server process's own CPU use is read from /proc over each call,
   divided by the level's warm-up + measured seconds.
3. The teacher's int8-dynamic behind the same server (`benchmarks/results/bench_triton.json`, loadtest
   with one SST-2 sentence per request on this machine) and the server-overhead figures of
   `benchmarks/results/bench_serve.json`, read back for comparison.

    python benchmarks/static_serve.py --model runs/x/static          # a distilled static student
    python benchmarks/static_serve.py --random-dim 256               # random rows, teacher's tokenizer

With --random-dim the table is random rows over the packaged teacher's tokenizer: speed does not depend
on the values. Writes benchmarks/results/static_serve.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "static"
LISTENING = re.compile(r"listening on (http://\S+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a static (Model2Vec) student directory")
    source.add_argument("--random-dim", type=int, help="build random rows of this width over the teacher's tokenizer")
    parser.add_argument("--work", type=Path, default=Path("/tmp/studentpack-static-serve"), help="scratch directory")
    parser.add_argument("--users", default="1,8,32", help="loadtest concurrency levels")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level")
    parser.add_argument("--texts", default=str(ROOT.parent / "shared" / "data" / "sst2"), help="loadtest --texts")
    parser.add_argument("--pool", type=int, default=1000, help="distinct texts (loadtest --pool)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "static_serve.json")
    parser.add_argument(
        "--placements",
        default="shared,split",
        help="shared: server and load generator on every core; split: server on CPU 0 (serve --cpus 0), "
        "load generator on CPU 1 (--client-cpus 1); each one runs every level",
    )
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine state)")
    return parser.parse_args(argv)


def random_student(work: Path, dim: int) -> Path:
    """Random rows over the packaged teacher's tokenizer, in Model2Vec's format (built once per width)."""
    from tokenizers import Tokenizer

    from studentpack.model.static_format import is_static_dir, save_static
    from studentpack.text.sources import packaged_teacher_dir

    out = work / f"random-{dim}"
    if not is_static_dir(out):
        tokenizer = Tokenizer.from_file(str(packaged_teacher_dir() / "tokenizer.json"))
        rows = np.random.default_rng(0).standard_normal((tokenizer.get_vocab_size(), dim)).astype(np.float32)
        out.mkdir(parents=True, exist_ok=True)
        save_static(out, rows, tokenizer, {"tokenizer_name": "all-MiniLM-L6-v2", "note": "random rows (speed only)"})
    return out


# -------------------------------------------------------------------------------------------- in process


def in_process(model: Path, texts: list[str], max_length: int = 128) -> dict[str, Any]:
    """encode() in batches of 32 (median of 5 passes), and one text through the server's engine path."""
    from studentpack.engines import open_model
    from studentpack.serving.static_backend import StaticBackend

    encoder = open_model(str(model), max_length=max_length)
    encoder.encode(texts[:64])
    rates = []
    for _ in range(5):
        started = time.perf_counter()
        encoder.encode(texts, batch_size=32)
        rates.append(len(texts) / (time.perf_counter() - started))
    backend = StaticBackend(model, "cpu", max_length)
    tokenize_us, run_us = [], []
    for text in texts * 3:
        t0 = time.perf_counter()
        tokenized = backend.tokenize([text])
        t1 = time.perf_counter()
        backend.run(tokenized.ids, [None])
        t2 = time.perf_counter()
        tokenize_us.append((t1 - t0) * 1e6)
        run_us.append((t2 - t1) * 1e6)
    total = [a + b for a, b in zip(tokenize_us, run_us, strict=True)]
    return {
        "encode_batch32_texts_per_s": round(statistics.median(rates), 1),
        "encode_batch32_passes": [round(r, 1) for r in rates],
        "one_text_engine_path_us": {
            "tokenize_p50": round(statistics.median(tokenize_us), 1),
            "pool_p50": round(statistics.median(run_us), 1),
            "total_p50": round(statistics.median(total), 1),
            "total_p99": round(float(np.percentile(total, 99)), 1),
        },
        "one_text_engine_path_texts_per_s": round(1e6 / statistics.median(total), 1),
        "max_length": max_length,
        "texts": len(texts),
    }


# ------------------------------------------------------------------------------------------------ served


class ServerProcess:
    """`studentpack serve` on a free loopback port; its CPU seconds read from /proc (all its threads)."""

    def __init__(self, model: Path, cpus: str = "") -> None:
        args = [sys.executable, "-m", "studentpack", "serve", f"{MODEL_NAME}={model}", "--host", "127.0.0.1",
                "--port", "0", "--log-level", "warning"]  # fmt: skip
        args += ["--cpus", cpus] if cpus else []
        self.process = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT)
        self.log: list[str] = []
        found = threading.Event()
        self.url = ""

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                match = LISTENING.search(line)
                if match and not found.is_set():
                    self.url = match[1]
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(120) or not self.url:
            self.stop()
            raise SystemExit("the server did not start:\n" + "".join(self.log))
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("the server exited:\n" + "".join(self.log))
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("the server never became ready:\n" + "".join(self.log))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime, every thread of the process

    def metadata(self) -> dict[str, Any]:
        import httpx

        return dict(httpx.get(f"{self.url}/v2/models/{MODEL_NAME}", timeout=10).json())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(60)


def served_level(server: ServerProcess, users: int, split: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One `studentpack loadtest` level, with the server's CPU use over it."""
    command = [sys.executable, "-m", "studentpack", "loadtest", server.url, "--model", MODEL_NAME,
               "--users", str(users), "--duration", str(args.duration), "--warmup", str(args.warmup),
               "--texts", args.texts, "--pool", str(args.pool), "--seed", str(args.seed),
               "--texts-per-request", "1", "--json"]  # fmt: skip
    command += ["--client-cpus", "1"] if split else []
    before = server.cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=args.warmup + args.duration + 300)
    server_cpu = server.cpu_seconds() - before
    if done.returncode != 0:
        raise SystemExit(f"loadtest at {users} users failed:\n{done.stderr[-3000:]}")
    (level,) = json.loads(done.stdout)["levels"]
    level["server_cpu"] = {
        "cpu_seconds": round(server_cpu, 2),
        # the loadtest call also spends a second or two starting locust, when the server is idle
        "cores_used": round(server_cpu / (args.warmup + args.duration), 3),
    }
    print(f"users {users:>3}: {level['texts_per_s']:.0f} texts/s, p50 {level['latency_ms']['p50']:.2f} ms, "
          f"client CPU {100 * level['client_cpu']['cores_used']:.0f}%, server CPU "
          f"{100 * level['server_cpu']['cores_used']:.0f}%, batch {level['server'].get('mean_batch_size')}",
          file=sys.stderr)  # fmt: skip
    return dict(level)


# ---------------------------------------------------------------------------------------------- reference


def teacher_reference() -> dict[str, Any]:
    """The teacher's int8-dynamic behind the same server, as measured earlier on this machine."""
    out: dict[str, Any] = {}
    triton = ROOT / "benchmarks" / "results" / "bench_triton.json"
    if triton.is_file():
        data = json.loads(triton.read_text())
        out["served_teacher_int8"] = {
            "source": "benchmarks/results/bench_triton.json (studentpack serve, teacher int8-dynamic, 2 threads)",
            "created": data.get("created"),
            "levels": {
                users: {k: row["studentpack"][k] for k in ("texts_per_s", "p50_ms", "mean_batch")}
                for users, row in data["levels"].items()
            },
        }
    overhead = ROOT / "benchmarks" / "results" / "bench_serve.json"
    if overhead.is_file():
        data = json.loads(overhead.read_text())
        floats = data["latency_c1"]["embeddings_float"]
        out["server_overhead_teacher_int8"] = {
            "source": "benchmarks/results/bench_serve.json (concurrency 1, /v1/embeddings float JSON)",
            "served_minus_in_process_p50_ms": round(data["server_overhead_ms"]["p50"], 3),
            "server_handler_p50_ms": floats.get("server_handler_p50_ms"),
            "outside_handler_p50_ms": round(floats.get("outside_handler_p50_ms", 0.0), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from studentpack.bench.texts import load_request_texts
    from studentpack.ground.provenance import hash_directory, machine_facts, package_versions
    from studentpack.model.static_format import load_static

    args = parse_args(argv)
    started = time.perf_counter()
    model = args.model if args.model is not None else random_student(args.work, args.random_dim)
    table = load_static(model)
    texts = load_request_texts(args.texts, args.pool, args.seed).texts
    load_average = os.getloadavg()
    print(f"in process: {model} ...", file=sys.stderr)
    local = in_process(model, texts)
    served, exit_codes, metadata = {}, {}, {}
    for placement in args.placements.split(","):
        split = placement == "split"
        print(f"served, {placement}:", file=sys.stderr)
        server = ServerProcess(model, "0" if split else "")
        try:
            metadata = server.metadata()
            served[placement] = [served_level(server, int(users), split, args) for users in args.users.split(",")]
        finally:
            exit_codes[placement] = server.stop()
    facts = machine_facts()
    document = {
        "benchmark": "static_serve",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": args.note,
        "model": {
            "path": str(model),
            "rows": "random (speed only)" if args.model is None else "distilled",
            "vocabulary": len(table.rows),
            "dim": table.dim,
            "sha256": hash_directory(model),
            "served_as": metadata.get("parameters", {}),
            "platform": metadata.get("platform"),
        },
        "settings": {
            "users": args.users,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "texts": args.texts,
            "pool": args.pool,
            "seed": args.seed,
            "texts_per_request": 1,
            "server": "studentpack serve defaults (max batch 32), loopback",
            "placements": {
                "shared": "server and load generator on both cores (no pinning)",
                "split": "server pinned to CPU 0, load generator to CPU 1",
            },
        },
        "in_process": local,
        "served": served,
        "reference": teacher_reference(),
        "server_exit_codes": exit_codes,
        "load_average_at_start": [round(x, 2) for x in load_average],
        "machine": {**facts, "cpu_class": cpu_class_name(facts)},
        "versions": package_versions(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cpu_class_name(facts: dict[str, Any]) -> str:
    from studentpack.ground.isa import cpu_class

    return str(cpu_class(list(facts.get("cpu_flags", []))))


if __name__ == "__main__":
    raise SystemExit(main())
