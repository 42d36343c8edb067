"""`studentpack serve` against Triton Inference Server, side by side: the same exported variant, the
same texts, the same concurrency levels, one server at a time on the same cores.

    benchmarks/triton_setup.sh                                 # once: tritonserver + its Python env
    python benchmarks/bench_triton.py                          # teacher int8-dynamic, users 1,4,16,32
    python benchmarks/bench_triton.py --duration 5 --users 1,4 # a quick check

All servers get the same settings: 2 onnxruntime threads, one model instance, dynamic batching with
max batch 32 and 5 ms of queue delay. Triton runs `studentpack export --triton`'s text model (Python
backend: tokenise and run the variant in model.py); studentpack serve runs the variant directory,
with its defaults (a mixed-length batch may run as length-sorted sub-batches) and, as
`studentpack-padded`, with every batch padded to its longest row as Triton's model.py does.
All are load-tested by `studentpack loadtest ... --endpoint infer` (OIP v2 JSON, one SST-2 dev
sentence per request). The servers run in turn (`--rounds` alternations), never together: on a
2-core machine two servers would share the cores with each other and the load generator.

Writes benchmarks/results/bench_triton.json: per level and server, p50/p95/p99 and throughput (the
median over rounds), and the ratios (ours / Triton throughput, Triton / ours p50; aim >= 1.2 at every
level); and benchmarks/results/bench_triton_report/: `studentpack report` over the last round's load
tests, which shows the variant behind each server side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VARIANT = "int8-dynamic"
AIM = 1.2
SERVERS = ("studentpack", "studentpack-padded", "triton")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,4,16,32")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the servers")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="which to run: studentpack (defaults), studentpack-padded (--split-cost-tokens 0: every batch "
        "padded to its longest row, as Triton's model.py does) and triton",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/studentpack-bench-triton"))
    parser.add_argument("--pytriton", type=Path, default=ROOT / ".triton" / "pytriton")
    parser.add_argument("--env", type=Path, default=ROOT / ".triton" / "env", help="the Python backend's venv")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_triton.json")
    parser.add_argument("--note", default="")
    return parser.parse_args(argv)


def export(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """The teacher's variant and its Triton repository (reused when present)."""
    onnx_dir, repo = args.work / "onnx", args.work / "repo"
    name = f"all-MiniLM-L6-v2_{VARIANT}"
    if not (repo / name / "config.pbtxt").is_file():
        command = [sys.executable, "-m", "studentpack", "export", "default", "--onnx", "--variants", VARIANT]
        command += ["--out", str(onnx_dir), "--triton", str(repo), "--triton-env", str(args.env), "--overwrite"]
        command += ["--triton-threads", str(args.threads), "--triton-max-batch", "32", "--triton-max-wait-ms", "5"]
        command += ["--threads", str(args.threads), "--no-speed-trial"]
        subprocess.run(command, check=True)
    return onnx_dir / VARIANT, repo, name


def loadtest(url: str, name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "studentpack", "loadtest", url, "--model", name, "--endpoint", "infer"]
    command += ["--users", args.users, "--duration", str(args.duration), "--warmup", str(args.warmup)]
    command += ["--texts", str(DATA / "sst2"), "--pool", "1000", "--out", str(out), "--json"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "loadtest.json").read_text())


def run_ours(variant: Path, name: str, args: argparse.Namespace, out: Path, padded: bool) -> dict[str, Any]:
    from studentpack.bench.server_proc import running_server

    options = ["--threads", str(args.threads), "--max-batch", "32", "--max-wait-ms", "5", "--log-level", "warning"]
    options += ["--split-cost-tokens", "0"] if padded else []
    with running_server({name: variant}, options, out / "serve.log") as server:
        return loadtest(server.url, name, args, out)


def run_triton(repo: Path, name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from triton_server import TritonServer  # benchmarks/triton_server.py: this script's directory is on sys.path

    with TritonServer(repo, [name], pytriton=args.pytriton) as server:
        return loadtest(server.url, name, args, out)


def levels(result: dict[str, Any]) -> dict[int, dict[str, float]]:
    return {
        int(level["users"]): {
            "p50_ms": level["latency_ms"]["p50"],
            "p95_ms": level["latency_ms"]["p95"],
            "p99_ms": level["latency_ms"]["p99"],
            "texts_per_s": level["texts_per_s"],
            "failures": level["failures"],
            "mean_batch": (level.get("server") or {}).get("mean_batch_size"),
        }
        for level in result["levels"]
    }


def combine(runs: list[dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    """Median over rounds of each figure, per level."""
    out: dict[int, dict[str, float]] = {}
    for users in runs[0]:
        out[users] = {}
        for key in runs[0][users]:
            values = [r[users][key] for r in runs if r[users].get(key) is not None]
            out[users][key] = statistics.median(values) if values else None  # type: ignore[assignment]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from studentpack.ground.provenance import machine, package_versions

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    variant, repo, name = export(args)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown or "studentpack" not in servers or "triton" not in servers:
        raise SystemExit(f"--servers: studentpack and triton are needed; known: {', '.join(SERVERS)}")
    raw: dict[str, list[dict[int, dict[str, float]]]] = {server: [] for server in servers}
    for k in range(args.rounds):
        for server in servers if k % 2 == 0 else servers[::-1]:  # alternate the order: drift hits all alike
            print(f"round {k + 1}: {server} ...", file=sys.stderr)
            out = args.work / f"{server}-{k}"
            if server == "triton":
                result = run_triton(repo, name, args, out)
            else:
                result = run_ours(variant, name, args, out, padded=server == "studentpack-padded")
            raw[server].append(levels(result))
    medians = {server: combine(runs) for server, runs in raw.items()}
    ours, triton = medians["studentpack"], medians["triton"]
    table: dict[str, dict[str, Any]] = {}
    for users in sorted(ours):
        throughput = ours[users]["texts_per_s"] / triton[users]["texts_per_s"]
        latency = triton[users]["p50_ms"] / ours[users]["p50_ms"]
        table[str(users)] = {
            **{server: medians[server][users] for server in servers},
            "throughput_ours_over_triton": round(throughput, 3),
            "p50_triton_over_ours": round(latency, 3),
            "aim_met": throughput >= AIM and latency >= AIM,
        }
        if "studentpack-padded" in medians:
            padded = medians["studentpack-padded"][users]
            table[str(users)]["throughput_padded_over_triton"] = round(
                padded["texts_per_s"] / triton[users]["texts_per_s"], 3
            )
            table[str(users)]["p50_triton_over_padded"] = round(triton[users]["p50_ms"] / padded["p50_ms"], 3)
        print(
            f"users {users:>2}: ours {ours[users]['texts_per_s']:.0f}/s p50 {ours[users]['p50_ms']:.2f} ms | "
            f"triton {triton[users]['texts_per_s']:.0f}/s p50 {triton[users]['p50_ms']:.2f} ms | "
            f"throughput x{throughput:.2f}, p50 x{latency:.2f}",
            file=sys.stderr,
        )
    report = {
        "benchmark": "bench_triton",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "variant": f"teacher {VARIANT}",
            "threads": args.threads,
            "max_batch": 32,
            "max_wait_ms": 5,
            "split_cost_tokens": "studentpack: default (64 on CPU); studentpack-padded: 0",
            "instances": 1,
            "users": args.users,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "texts": "SST-2 dev sentences, one per request, OIP v2 JSON (`loadtest --endpoint infer`)",
            "triton": "tritonserver from nvidia-pytriton 0.7.0, Python backend (model.py: tokenizers + onnxruntime)",
        },
        "levels": table,
        "raw": raw,
        "aim": AIM,
        "machine": {**machine(), "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": package_versions(),
        "note": args.note,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    side_by_side_report(variant, args)
    return 0


def side_by_side_report(variant: Path, args: argparse.Namespace) -> None:
    """`studentpack report` over the last round's load tests: the variant's rows, one per server."""
    last = args.rounds - 1
    roots = [variant, args.work / f"studentpack-{last}", args.work / f"triton-{last}"]
    out = args.out.parent / "bench_triton_report"
    command = [sys.executable, "-m", "studentpack", "report", *map(str, roots), "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"wrote {out}/report.md", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
