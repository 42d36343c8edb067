"""Where ONNX Runtime's INT8 time goes: per-operator profile of an exported variant, and what the
int8-static graph stores in 8 bits.

    python benchmarks/profile_ort.py --variants /tmp/teacher-onnx      # a directory of exported variants

For each ORT variant present (int8-dynamic, int8-static, fp32), runs `--runs` batches of `--batch` rows
of exactly `--seq` real tokens with onnxruntime's profiler on, and sums the kernel time per operator
type (the share of MatMulInteger/DynamicQuantizeLinear, attention, LayerNorm, GELU, ...). For the int8
graphs it also counts initializer bytes by element type and lists the float weights that stay float.
Writes benchmarks/results/profile_ort.json (or --out).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("int8-dynamic", "int8-static", "fp32")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=Path, required=True, help="directory holding <variant>/model.onnx")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "profile_ort.json")
    return parser.parse_args(argv)


def operator_profile(model: Path, feeds: dict[str, np.ndarray], threads: int, runs: int) -> dict[str, Any]:
    """Kernel time per operator type (ms per run) from onnxruntime's own profiler."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as scratch:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(scratch, "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        session.run(None, feeds)  # warm-up, excluded below by counting only the last `runs`
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    per_run = len(kernels) // (runs + 1)
    timed = kernels[per_run:]  # drop the warm-up run's kernels
    by_op: dict[str, float] = collections.defaultdict(float)
    for event in timed:
        by_op[event["args"]["op_name"]] += event["dur"] / 1000.0 / runs  # microseconds -> ms per run
    total = sum(by_op.values())
    ranked = sorted(by_op.items(), key=lambda kv: -kv[1])
    return {
        "kernel_ms_per_run": round(total, 2),
        "by_operator": {op: {"ms": round(ms, 2), "share": round(ms / total, 3)} for op, ms in ranked},
        "nodes_per_run": per_run,
    }


def weight_storage(model: Path) -> dict[str, Any]:
    """Initializer bytes by element type, and the largest float initializers (what stays unquantized)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    by_type: dict[str, int] = collections.defaultdict(int)
    floats = []
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        by_type[str(array.dtype)] += array.nbytes
        if array.dtype == np.float32 and array.size >= 4096:
            floats.append((tensor.name, list(array.shape), array.nbytes))
    floats.sort(key=lambda item: -item[2])
    return {
        "mib_by_dtype": {k: round(v / 2**20, 2) for k, v in sorted(by_type.items())},
        "largest_float_weights": [{"name": n, "shape": s, "mib": round(b / 2**20, 2)} for n, s, b in floats[:10]],
        "float_weights_over_4096_values": len(floats),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_export import inputs
    from studentpack.ground.provenance import machine, package_versions
    from studentpack.model import adapter

    present = [v for v in VARIANTS if (args.variants / v / "model.onnx").is_file()]
    if not present:
        raise SystemExit(f"no ONNX Runtime variant under {args.variants}")
    tokenizer = adapter.load_tokenizer(args.variants / present[0])
    feeds = inputs(tokenizer, args.batch, args.seq, ["input_ids", "attention_mask", "token_type_ids"])
    results: dict[str, Any] = {}
    for variant in present:
        model = args.variants / variant / "model.onnx"
        results[variant] = operator_profile(model, feeds, args.threads, args.runs)
        if variant.startswith("int8"):
            results[variant]["weights"] = weight_storage(model)
        top = list(results[variant]["by_operator"].items())[:6]
        print(f"{variant}: " + ", ".join(f"{op} {v['ms']:.1f} ms ({v['share']:.0%})" for op, v in top), file=sys.stderr)
    report = {
        "benchmark": "profile_ort",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"threads": args.threads, "batch": args.batch, "seq": args.seq, "runs": args.runs},
        "machine": machine(),
        "versions": package_versions(),
        "variants": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
