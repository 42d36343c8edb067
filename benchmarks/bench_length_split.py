"""In-process: one batch padded to its longest text against the length-sorted sub-batches the server
runs (`studentpack.serving.length_split`), for several per-call costs, on real SST-2 dev sentences.

    python benchmarks/bench_length_split.py                 # teacher int8-dynamic (exported if missing)
    python benchmarks/bench_length_split.py --variant runs/mha-l3/onnx/int8-dynamic

For each batch size, `--trials` random batches of SST-2 dev sentences (seeded) each run padded and
split under every call cost, in a random order (ONNX Runtime runs a shape it has just seen faster).
The figures are median milliseconds per batch and the ratio padded over split (above 1: the split is
faster). Writes benchmarks/results/bench_length_split.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant", type=Path, default=None, help="an exported variant dir (default: the teacher's int8-dynamic)"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/studentpack-bench-length-split"))
    parser.add_argument("--batches", default="4,8,17,32")
    parser.add_argument("--costs", default="32,64,128,256", help="per-call costs in padded tokens")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_length_split.json")
    return parser.parse_args(argv)


def teacher_variant(work: Path) -> Path:
    variant = work / "onnx" / "int8-dynamic"
    if not (variant / "model.onnx").is_file():
        command = [sys.executable, "-m", "studentpack", "export", "default", "--onnx", "--variants", "int8-dynamic"]
        command += ["--out", str(work / "onnx"), "--overwrite", "--no-speed-trial"]
        subprocess.run(command, check=True)
    return variant


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from studentpack.ground.provenance import machine, package_versions
    from studentpack.serving.graph_backend import GraphBackend
    from studentpack.serving.length_split import plan_groups, run_in_groups

    variant = args.variant or teacher_variant(args.work)
    backend = GraphBackend(variant, "cpu", 128, args.threads, max_batch=32)
    with (DATA / "sst2" / "dev.tsv").open(encoding="utf-8") as handle:
        sentences = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t")]
    ids = backend.tokenize(sentences).ids
    costs = [int(c) for c in args.costs.split(",")]
    rng = random.Random(0)

    def timed(cost: int, batch: list[list[int]]) -> float:
        started = time.perf_counter()
        run_in_groups(backend.run, batch, [None] * len(batch), cost)
        return (time.perf_counter() - started) * 1000

    results: dict[str, Any] = {}
    for size in (int(b) for b in args.batches.split(",")):
        times: dict[int, list[float]] = {cost: [] for cost in [0, *costs]}
        groups: dict[int, list[int]] = {cost: [] for cost in costs}
        for _ in range(args.trials):
            batch = rng.sample(ids, size)
            for cost in rng.sample(list(times), len(times)):  # in random order: a repeated shape runs faster
                times[cost].append(timed(cost, batch))
            for cost in costs:
                groups[cost].append(len(plan_groups([len(row) for row in batch], cost)))
        padded = statistics.median(times[0])
        results[str(size)] = {
            "padded_ms": round(padded, 2),
            "split": {
                str(cost): {
                    "ms": round(statistics.median(times[cost]), 2),
                    "padded_over_split": round(padded / statistics.median(times[cost]), 3),
                    "mean_sub_batches": round(statistics.fmean(groups[cost]), 2),
                }
                for cost in costs
            },
        }
        best = {c: results[str(size)]["split"][str(c)]["padded_over_split"] for c in costs}
        print(f"batch {size:>2}: padded {padded:.1f} ms; padded/split by cost {best}", file=sys.stderr)
    report = {
        "benchmark": "bench_length_split",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "variant": str(variant),
        "threads": args.threads,
        "trials": args.trials,
        "texts": "SST-2 dev sentences, random batches (seed 0)",
        "mean_tokens": round(statistics.fmean(len(row) for row in ids), 1),
        "batches": results,
        "machine": machine(),
        "versions": package_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
