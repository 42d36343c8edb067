"""Does `studentpack serve` give a text the same vector alone and inside a multi-text request, for every
variant the export accepts here? And what does keeping that promise cost in speed?

1. Exports a model (default: the packaged teacher) to the CPU variants plus int8-static, or takes an
   existing export directory (`--variants-dir`).
2. Starts `studentpack serve` on loopback with every accepted variant (default policy: a batch-dependent
   variant runs one text per call), sends each probe text alone and then inside multi-text
   `/v1/embeddings` requests (the mixes of batch_invariance.worst_batch_cosine), and records the worst
   cosine per variant. Then the same
   against a server started with `--batch-dependent batch` (what serving did before).
3. Load-tests int8-dynamic one text per call, int8-dynamic batched, and the batch-invariant variants,
   at 1 and 8 users, interleaved in one run so machine drift hits them alike.

    python benchmarks/batch_invariance.py [--variants-dir runs/pipeline/teacher/onnx] [--out FILE]

Writes benchmarks/results/batch_invariance.json. Latencies are medians of this run only: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from studentpack.batch_invariance import INVARIANT_COSINE, PROBE_TEXTS, worst_batch_cosine
from studentpack.bench.server_proc import running_server
from studentpack.ground import atomic
from studentpack.ground.provenance import machine, package_versions

ROOT = Path(__file__).resolve().parents[1]


def export(model: str, out: Path) -> Path:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from studentpack.export.presets import parse_variants

    variants = parse_variants([*parse_variants(None, "cpu"), "int8-static"], "cpu")  # the default set + static
    export_variants(ExportOptions(model=model, out=str(out), variants=variants, threads=2), log=print)
    return out


def accepted(directory: Path) -> dict[str, Path]:
    found = {}
    for sub in sorted(directory.iterdir()):
        record = sub / "export.json"
        if record.is_file() and json.loads(record.read_text()).get("status") == "accepted":
            found[sub.name] = sub
    return found


def _embed(client: httpx.Client, model: str, texts: list[str]) -> np.ndarray:
    response = client.post("/v1/embeddings", json={"model": model, "input": texts})
    response.raise_for_status()
    return np.asarray([row["embedding"] for row in response.json()["data"]], dtype=np.float64)


def worst_cosines(url: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per served model: the probe texts alone and in multi-text requests, through the HTTP endpoint."""
    out = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for name in names:

            def encode(texts: Sequence[str], name: str = name) -> np.ndarray:
                return _embed(client, name, list(texts))

            worst = worst_batch_cosine(encode)
            meta = client.get(f"/v2/models/{name}").json()["parameters"]
            out[name] = {"worst_cosine": round(worst, 6), "batching": meta.get("batching"),
                         "load_batch_cosine": meta.get("batch_cosine")}  # fmt: skip
    return out


def load_levels(url: str, name: str, users: tuple[int, ...], duration_s: float) -> dict[str, Any]:
    from studentpack.bench.loadtest import LoadtestOptions, run_loadtest

    options = LoadtestOptions(url=url, model=name, users=users, duration_s=duration_s, warmup_s=1.5)
    result = run_loadtest(options, log=lambda line: None)
    return {
        str(level["users"]): {
            "p50_ms": level["latency_ms"]["p50"],
            "p95_ms": level["latency_ms"]["p95"],
            "texts_per_s": level["texts_per_s"],
            "mean_batch": (level.get("server") or {}).get("mean_batch_size"),
        }
        for level in result["levels"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model to export when no --variants-dir is given")
    parser.add_argument("--variants-dir", type=Path, help="an existing export directory (one variant per subdir)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per load level")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch_invariance.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="batch-invariance-"))
    variants = accepted(args.variants_dir or export(args.model, work / "onnx"))
    print("accepted here:", ", ".join(variants))
    results: dict[str, Any] = {"benchmark": "batch_invariance", "threshold": INVARIANT_COSINE,
                               "probe_texts": len(PROBE_TEXTS)}  # fmt: skip
    common = ["--threads", "2", "--log-level", "warning"]
    with running_server(variants, common, work / "serve-default.log") as server:
        results["default"] = worst_cosines(server.url, list(variants))
        print("default policy:", results["default"])
        speed: dict[str, Any] = {name: load_levels(server.url, name, (1, 8), args.duration) for name in variants}
    with running_server(variants, [*common, "--batch-dependent", "batch"], work / "serve-batch.log") as server:
        results["batched_anyway"] = worst_cosines(server.url, list(variants))
        print("--batch-dependent batch:", results["batched_anyway"])
        dependent = [n for n, r in results["batched_anyway"].items() if r["worst_cosine"] < INVARIANT_COSINE]
        for name in dependent:
            speed[f"{name} (batched anyway)"] = load_levels(server.url, name, (1, 8), args.duration)
    results["speed"] = speed
    results["machine"] = machine()
    results["versions"] = package_versions()
    atomic.write_json(args.out, results)
    for name, levels in speed.items():
        print(f"{name:36s}", " | ".join(f"{u} users: p50 {v['p50_ms']:.2f} ms, {v['texts_per_s']:.0f} texts/s"
                                        for u, v in levels.items()))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
