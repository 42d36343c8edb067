"""Serving overhead: an in-process session (ORT or OpenVINO) vs the same variant behind `studentpack serve`.

Same model, same threads, same texts, same machine, measured interleaved so that slow spells of
a shared machine hit both sides alike:

1. Latency at concurrency 1 (one text per request). Request i runs on every path before request
   i+1: in-process `session.run_texts([text])`; the server's engine path without HTTP (tokenize
   without padding + session.run, `studentpack.serving.graph_backend`); and POST /v1/embeddings (float JSON),
   /v1/embeddings (base64) and /v2/models/NAME/infer (OIP JSON) on a `studentpack serve`
   subprocess, over one keep-alive `http.client` connection, timed from request sent to response
   body read. `server_overhead_ms.p50` = served float p50 - in-process p50 (aim: <= 1 ms). The
   server's own queue and inference times (its timing headers) are recorded beside each form.
2. Throughput at concurrency 32, in `--rounds` alternations of an in-process window (batches of
   32 of the same texts, back to back) and a served window (32 closed-loop client threads, one
   text per request, the server batching them with --max-batch 32). `throughput_ratio` = served
   texts/s / in-process texts/s (aim: >= 0.85). The mean served batch size is read from /metrics.

Spinning: both sides run onnxruntime with idle intra-op threads parked, not busy-waiting (the
server's default; --spin turns it on for both). On the 2-core development machine, spinning
threads of one process took the cores the other needed: served-minus-in-process p50 was about
5 ms with spinning against about 1 ms without, and in-process latency itself was lower without.

Texts: SST-2 dev sentences (real short text, about 20 words; `--texts-from embedded` takes 8-40 word
sentences from the embedded corpus instead), the same pool in the same order everywhere. The model
is an exported variant directory (--model), or by default the packaged teacher exported to
--variant under --work (reused when present).

    python benchmarks/bench_serve.py                         # teacher int8-dynamic, threads 2
    python benchmarks/bench_serve.py --model runs/x/onnx/fused --requests 200 --duration 20
    python benchmarks/bench_serve.py --quick                 # a short validation run

Writes benchmarks/results/bench_serve.json (or --out): p50/p95/p99, ratios, settings, machine.
The client runs in this process and shares the cores with the server: on a small machine that
is part of what is measured (a co-located client pays it too).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="an exported variant directory (default: export the teacher)")
    parser.add_argument("--variant", default="int8-dynamic", help="variant to export when --model is not given")
    parser.add_argument("--work", type=Path, default=Path("/tmp/studentpack-bench-serve"), help="export cache")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads, both sides")
    parser.add_argument("--spin", action="store_true", help="let idle onnxruntime threads busy-wait, both sides")
    parser.add_argument("--server-spin", action="store_true", help="let the server's idle threads busy-wait (only)")
    parser.add_argument("--texts", type=int, default=512, help="size of the text pool")
    parser.add_argument(
        "--texts-from", choices=["sst2", "embedded"], default="sst2", help="SST-2 dev sentences or embedded text"
    )
    parser.add_argument("--requests", type=int, default=400, help="timed requests at concurrency 1")
    parser.add_argument("--warmup", type=int, default=30, help="untimed requests before each measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per side of the concurrency run")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of in-process and served windows")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="server --max-wait-ms")
    parser.add_argument("--quick", action="store_true", help="small counts: validate the script, not the figures")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_serve.json")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine state)")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.warmup, args.duration, args.rounds, args.texts = 60, 10, 6.0, 2, 128
    return args


# ------------------------------------------------------------------------------------------ inputs


def text_pool(n: int, source: str = "sst2") -> list[str]:
    """`n` real sentences in a deterministic order: SST-2 dev (its own length mix; this checkout's
    ../shared/data) or sentences of 8-40 words from the embedded corpus."""
    if source == "sst2":
        from studentpack.tasks import data as task_data

        table = task_data.read_table(task_data.locate(str(ROOT.parent / "shared" / "data" / "sst2"), "eval"))
        sentences = [str(row["sentence"]) for row in table.rows]
        return [sentences[i % len(sentences)] for i in range(n)]
    from studentpack.text.corpus import embedded_paragraphs

    sentences = []
    for paragraph in embedded_paragraphs():
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            if 8 <= len(sentence.split()) <= 40:
                sentences.append(sentence)
    if len(sentences) < n:
        raise SystemExit(f"only {len(sentences)} sentences in the embedded corpus; ask for fewer --texts")
    step = len(sentences) // n
    return [sentences[i * step] for i in range(n)]


def variant_dir(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return args.model
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from studentpack.text.sources import packaged_teacher_dir

    out = args.work / "teacher-onnx"
    if not (out / args.variant / "export.json").is_file():
        print(f"exporting the packaged teacher to {out}/{args.variant} ...", file=sys.stderr)
        options = ExportOptions(
            model=str(packaged_teacher_dir()),
            out=str(out),
            variants=(args.variant,),
            threads=args.threads,
            overwrite=True,
        )
        results = export_variants(options, log=lambda line: None)
        if not any(r.accepted and r.variant == args.variant for r in results):
            raise SystemExit(f"the {args.variant} export failed its gates: {[r.reason for r in results]}")
    return out / args.variant


# ------------------------------------------------------------------------------------- statistics


def summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


# ----------------------------------------------------------------------------------------- server


class ServerProcess:
    def __init__(self, model: Path, args: argparse.Namespace) -> None:
        command = [
            sys.executable, "-m", "studentpack", "serve", f"{MODEL_NAME}={model}", "--port", "0",
            "--threads", str(args.threads), "--max-batch", str(args.concurrency),
            "--max-wait-ms", str(args.max_wait_ms), "--max-queue", str(max(1024, 4 * args.concurrency)),
            "--log-level", "warning", *(["--spin"] if args.spin or args.server_spin else []),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        match = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not match:
            self.process.kill()
            raise SystemExit(f"the server did not start: {line}{self.process.stderr.read()}")
        self.host, self.port = match[1], int(match[2])
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.monotonic() + 300
        while self.get("/v2/health/ready")[0] != 200:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("the server never became ready")
            time.sleep(0.2)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            sys.stderr.write("server: " + line)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status, body
        except OSError:
            return 0, b""

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def post(
    conn: http.client.HTTPConnection, path: str, body: bytes, sink: list[tuple[float, float, float]] | None = None
) -> bytes:
    """One request; `sink` collects the server's own (queue, inference, handler total) ms from its headers."""
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}: {data[:200]!r}")
    if sink is not None:
        total = re.search(r"total;dur=([0-9.]+)", response.getheader("server-timing", "") or "")
        sink.append(
            (
                float(response.getheader("x-queue-time-ms", 0)),
                float(response.getheader("x-inference-time-ms", 0)),
                float(total[1]) if total else float("nan"),
            )
        )
    return data


def request_bodies(texts: list[str]) -> dict[str, tuple[str, list[bytes]]]:
    def oip(text: str) -> bytes:
        tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}
        return json.dumps({"inputs": [tensor]}).encode()

    return {
        "embeddings_float": (
            "/v1/embeddings",
            [json.dumps({"model": MODEL_NAME, "input": t}).encode() for t in texts],
        ),
        "embeddings_base64": (
            "/v1/embeddings",
            [json.dumps({"model": MODEL_NAME, "input": t, "encoding_format": "base64"}).encode() for t in texts],
        ),
        "oip_infer_json": (f"/v2/models/{MODEL_NAME}/infer", [oip(t) for t in texts]),
    }


# -------------------------------------------------------------------------------------- latency


def latency_c1(server: ServerProcess, local: Any, backend: Any, texts: list[str], args: argparse.Namespace) -> dict:
    """Concurrency 1, interleaved: request i runs on every path before request i+1, so slow spells of a
    shared machine hit all paths alike."""
    session, output = local
    conn = server.connect()
    bodies = request_bodies(texts)
    parts: dict[str, list[tuple[float, float, float]]] = {form: [] for form in bodies}

    def engine(text: str) -> None:
        tokens = backend.tokenize([text])
        backend.run(tokens.ids, [None])

    paths: dict[str, Callable[[int], Any]] = {
        "in_process": lambda i: session.run_texts([texts[i]], [output]),
        "engine": lambda i: engine(texts[i]),
    }
    for form, (path, data) in bodies.items():
        paths[form] = functools.partial(_post_nth, conn, path, data, parts[form])
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for i in range(args.warmup + args.requests):
        # the order rotates: the path that runs right after another process's work pays that process's
        # wake-ups (measured: the first served form after the two in-process ones was 0.6 ms slower)
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            paths[name](i % len(texts))
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    conn.close()
    out = {name: summary(values) for name, values in times.items()}
    for form, values in parts.items():
        timed_parts = values[args.warmup :]
        out[form]["server_queue_p50_ms"] = float(np.median([q for q, _, _ in timed_parts]))
        out[form]["server_inference_p50_ms"] = float(np.median([i for _, i, _ in timed_parts]))
        # where a request's time goes beyond the model: in the handler (parse, tokenize, hand-off,
        # serialise) and outside it (HTTP on both ends, the ASGI server, the client)
        out[form]["server_handler_p50_ms"] = float(np.median([t - q - i for q, i, t in timed_parts]))
        out[form]["outside_handler_p50_ms"] = float(
            np.median([1000.0 * w - t for w, (_, _, t) in zip(times[form], timed_parts, strict=True)])
        )
    return out


def _post_nth(
    conn: http.client.HTTPConnection, path: str, bodies: list[bytes], sink: list[tuple[float, float, float]], i: int
) -> bytes:
    return post(conn, path, bodies[i], sink)


# ----------------------------------------------------------------------------------- throughput


def throughput(server: ServerProcess, local: Any, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Rounds of (in-process batches of 32, then served at concurrency 32), each `duration/rounds` long."""
    session, output = local
    batch = args.concurrency
    batches = [texts[i : i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    window = args.duration / args.rounds
    local_counts, local_time, served_runs = 0, 0.0, []
    for _ in range(args.rounds):
        for b in batches[:1]:
            session.run_texts(b, [output])  # warm
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < window:
            session.run_texts(batches[done % len(batches)], [output])
            done += 1
        local_time += time.perf_counter() - start
        local_counts += done * batch
        served_runs.append(served_window(server, texts, args, window))
    requests = sum(r["requests"] for r in served_runs)
    elapsed = sum(r["elapsed"] for r in served_runs)
    batches_run = sum(r["batches"] for r in served_runs)
    return {
        "in_process_batch": {"batch": batch, "texts_per_s": local_counts / local_time},
        "served": {
            "concurrency": args.concurrency,
            "requests": requests,
            "texts_per_s": requests / elapsed,
            "latency": summary([x for r in served_runs for x in r["latencies"]]),
            "mean_batch_size": sum(r["batched_texts"] for r in served_runs) / batches_run if batches_run else 0.0,
            "errors": [e for r in served_runs for e in r["errors"]][:5],
        },
        "rounds": [
            {
                "served_texts_per_s": r["requests"] / r["elapsed"],
                "mean_batch_size": r["batched_texts"] / max(1, r["batches"]),
            }
            for r in served_runs
        ],
    }


def served_window(server: ServerProcess, texts: list[str], args: argparse.Namespace, window: float) -> dict[str, Any]:
    """`concurrency` closed-loop clients, one text per request; counted after a short warm-up."""
    path, bodies = request_bodies(texts)["embeddings_float"]
    stop, measuring = threading.Event(), threading.Event()
    latencies: list[list[float]] = [[] for _ in range(args.concurrency)]
    errors: list[str] = []

    def client(k: int) -> None:
        conn = server.connect()
        i = k
        try:
            while not stop.is_set():
                start = time.perf_counter()
                post(conn, path, bodies[i % len(bodies)])
                if measuring.is_set():
                    latencies[k].append(time.perf_counter() - start)
                i += args.concurrency
        except Exception as exc:  # reported; the run is then not valid
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.concurrency)]
    for t in threads:
        t.start()
    time.sleep(min(2.0, window / 4))  # warm-up: batching settles
    before = batch_metrics(server)
    measuring.set()
    start = time.perf_counter()
    time.sleep(window)
    measuring.clear()
    elapsed = time.perf_counter() - start
    after = batch_metrics(server)
    stop.set()
    for t in threads:
        t.join(120)
    return {
        "requests": sum(map(len, latencies)),
        "elapsed": elapsed,
        "latencies": [x for per in latencies for x in per],
        "batches": after.get("count", 0.0) - before.get("count", 0.0),
        "batched_texts": after.get("sum", 0.0) - before.get("sum", 0.0),
        "errors": errors,
    }


def batch_metrics(server: ServerProcess) -> dict[str, float]:
    _, body = server.get("/metrics")
    values = {}
    for line in body.decode().splitlines():
        for key in ("sum", "count"):
            if line.startswith(f'studentpack_batch_size_{key}{{model="{MODEL_NAME}"}}'):
                values[key] = float(line.split()[-1])
    return values


# ------------------------------------------------------------------------------------------ main


def facts(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    from studentpack.ground.provenance import cpu_flags, machine, package_versions

    flags = cpu_flags()
    return {
        "machine": machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": [f for f in flags if f.startswith(("avx", "amx", "sse4", "fma", "vnni")) or "vnni" in f],
        "load_average_at_start": os.getloadavg(),
        "versions": package_versions(),
        "http_impl": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "json": "orjson" if importlib.util.find_spec("orjson") else "json",
        "model": str(model),
        "export": _export_summary(model),
    }


def _export_summary(model: Path) -> dict[str, Any]:
    try:
        data = json.loads((model / "export.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: data[k] for k in ("variant", "source", "isa", "kind", "hidden_size", "num_layers") if k in data}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from studentpack.engines.graph import open_session
    from studentpack.ground.atomic import write_json
    from studentpack.serving.graph_backend import GraphBackend

    model = variant_dir(args)
    texts = text_pool(args.texts, args.texts_from)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine_facts = facts(args, model)
    session = open_session(model, threads=args.threads, spinning=args.spin)
    output = "sentence_embedding" if "sentence_embedding" in session.output_names else session.output_names[0]
    backend = GraphBackend(model, device="cpu", max_length=session.max_length, threads=args.threads, spin=args.spin)
    server = ServerProcess(model, args)
    try:
        print("latency at concurrency 1 ...", file=sys.stderr)
        latency = latency_c1(server, (session, output), backend, texts, args)
        print(f"throughput at concurrency {args.concurrency} ...", file=sys.stderr)
        rates = throughput(server, (session, output), texts, args)
    finally:
        exit_code = server.stop()

    served_p50 = latency["embeddings_float"]["p50_ms"]
    results = {
        "benchmark": "serve",
        "started": started,
        "note": args.note,
        "settings": {
            "threads": args.threads,
            "spinning": args.spin,
            "server_spinning": args.spin or args.server_spin,
            "texts": len(texts),
            "texts_from": args.texts_from,
            "mean_words": statistics.mean(len(t.split()) for t in texts),
            "max_length": session.max_length,
            "requests_c1": args.requests,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "max_batch": args.concurrency,
            "max_wait_ms": args.max_wait_ms,
            "quick": args.quick,
        },
        "latency_c1": latency,
        "throughput": rates,
        "server_overhead_ms": {
            "p50": served_p50 - latency["in_process"]["p50_ms"],
            "p50_vs_engine": served_p50 - latency["engine"]["p50_ms"],
        },
        "throughput_ratio": rates["served"]["texts_per_s"] / rates["in_process_batch"]["texts_per_s"],
        "aims": {"server_overhead_p50_ms": 1.0, "throughput_ratio": 0.85},
        "server_exit_code": exit_code,
        **machine_facts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)
    lat = {name: round(v["p50_ms"], 3) for name, v in latency.items()}
    print(f"c=1 p50 ms: {lat}")
    print(
        f"c={args.concurrency}: served {rates['served']['texts_per_s']:.1f} texts/s "
        f"(mean batch {rates['served']['mean_batch_size']:.1f}) vs in-process batch "
        f"{rates['in_process_batch']['texts_per_s']:.1f} texts/s"
    )
    print(json.dumps({k: results[k] for k in ("server_overhead_ms", "throughput_ratio")}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
