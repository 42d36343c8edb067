"""Export benchmark: PyTorch eager vs ONNX fp32, fused and INT8 (dynamic), plus the machine's INT8 GEMM floor.

One run, same machine, same threads (engines timed round-robin), for the packaged teacher
(all-MiniLM-L6-v2, 6 layers) and a 3-layer student sliced from it (teacher layers 1, 3, 5).
Inputs are real text, every row exactly `--seq` real tokens (no padding). The ONNX variants are
produced by `export_variants` (so they passed their gates). Figures: median, p90 and min latency
per batch, speed-ups over eager, sizes.

INT8 GEMM floor: the model's weight GEMMs (QKV, attention output, FFN in, FFN out per layer; M =
batch x seq rows) run alone as dynamic-INT8 MatMuls through onnxruntime (the same
quantize_dynamic path and kernels as the int8 variant), summed over layers. It is the time the
int8 model could not beat without faster GEMMs; `int8_vs_floor` = floor / int8 latency.

    python benchmarks/bench_export.py                       # threads 2, seq 128, batches 1 and 32
    python benchmarks/bench_export.py --repeats 3 --models teacher   # a quick check

Writes benchmarks/results/bench_export.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STUDENT_LAYERS = (1, 3, 5)  # teacher layers kept by the sliced student (1-based)
ENGINES = ("eager", "onnx-fp32", "onnx-fused", "onnx-int8")
VARIANT_OF = {"onnx-fp32": "fp32", "onnx-fused": "fused", "onnx-int8": "int8-dynamic"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per engine and batch (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", default="teacher,student")
    parser.add_argument("--isa", default="auto", help="INT8 preset for the int8 variant (export --isa)")
    parser.add_argument("--work", type=Path, help="keep models and exports here (reused when present)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_export.json")
    parser.add_argument(
        "--schedule",
        choices=["blocks", "interleaved"],
        default="blocks",
        help="blocks: each engine alone with ORT threads spinning (production setting); "
        "interleaved: round-robin with ORT threads parked (robust to a loaded machine)",
    )
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine state)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------- models


def make_student(teacher_dir: Path, out: Path) -> Path:
    """A 3-layer student: the teacher's embeddings, pooler and layers 1, 3, 5."""
    from studentpack import adapter

    if (out / "config.json").is_file():
        return out
    teacher = adapter.load_encoder(teacher_dir)
    config = teacher.config
    student = adapter.new_encoder_like(
        teacher, len(STUDENT_LAYERS), config.hidden_size, config.num_attention_heads, config.intermediate_size
    )
    adapter.copy_embeddings(teacher, student)
    adapter.copy_pooler(teacher, student)
    for target, source in enumerate(STUDENT_LAYERS, start=1):
        adapter.copy_layer(teacher, source, student, target)
    adapter.save_pretrained(student, adapter.load_tokenizer(teacher_dir), out)
    return out


def export(model_dir: Path, out: Path, isa: str, threads: int) -> Path:
    from studentpack.export.pipeline import ExportOptions, export_variants

    if all((out / v / "model.onnx").is_file() for v in VARIANT_OF.values()):
        return out
    options = ExportOptions(
        model=str(model_dir),
        out=str(out),
        variants=tuple(VARIANT_OF.values()),
        isa=isa,
        threads=threads,
        overwrite=True,
    )
    results = export_variants(options, log=lambda line: print(f"  {line}", file=sys.stderr))
    failed = [r.variant for r in results if not r.accepted]
    if failed:
        raise SystemExit(f"export of {model_dir} failed its gates: {failed}")
    return out


def inputs(tokenizer: Any, batch: int, seq: int, input_names: list[str]) -> dict[str, np.ndarray]:
    """`batch` different real-text rows of exactly `seq` tokens (no padding)."""
    from studentpack.corpus import embedded_paragraphs

    text = " ".join(embedded_paragraphs())
    words = text.split()
    rows = [" ".join(words[i * 400 : (i + 1) * 400]) for i in range(batch)]
    enc = tokenizer(rows, padding="max_length", truncation=True, max_length=seq, return_tensors="np")
    assert enc["attention_mask"].all(), "every row must be seq real tokens"
    return {name: np.asarray(enc[name], dtype=np.int64) for name in input_names if name in enc}


# ------------------------------------------------------------------------------------------- timing


def summarise(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "median_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "min_ms": round(times[0], 3),
        "runs": len(times),
    }


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(fn: Callable[[], Any], repeats: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    return summarise([_timed(fn) for _ in range(repeats)])


def measure_interleaved(runners: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, Any]:
    """Round-robin over the engines, so a disturbance (another process) hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    for _ in range(repeats):
        for name, fn in runners.items():
            times[name].append(_timed(fn))
    return {name: summarise(values) for name, values in times.items()}


def measure_blocks(factories: dict[str, Callable[[], Callable[[], Any]]], repeats: int, warmup: int) -> dict[str, Any]:
    """Each engine alone, as a dedicated inference process runs it: built, warmed, timed, released.

    ONNX Runtime threads spin between runs by default (its production setting); timing engines in
    blocks, with a pause between them, keeps one engine's spinning threads off another's cores.
    """
    results = {}
    for name, factory in factories.items():
        fn = factory()
        results[name] = measure(fn, repeats, warmup)
        del fn
        time.sleep(0.5)
    return results


def eager_runner(model_dir: Path, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
    """PyTorch eager (default attention implementation, as TorchEncoder runs it), mean pooling + L2."""
    import torch

    from studentpack import adapter
    from studentpack.pooling import l2_normalize, mean_pool

    model = adapter.load_encoder(model_dir).eval()
    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

    def run() -> Any:
        with torch.inference_mode():
            states = model(**tensors).last_hidden_state
            return l2_normalize(mean_pool(states, tensors["attention_mask"]))

    return run


def onnx_runner(variant_dir: Path, feeds: dict[str, np.ndarray], threads: int, spinning: bool) -> Callable[[], Any]:
    from studentpack.engines.ort import OrtSession

    # timed round-robin, a session whose idle threads spin steals the cores of the engine timed next
    # (measured: fused looked 1.5x slower than fp32 at batch 1), so interleaved runs park them
    session = OrtSession.open(variant_dir, threads=threads, warmup=False, spinning=spinning)
    return lambda: session.run(feeds, ["sentence_embedding"])


# ------------------------------------------------------------------------------------------- INT8 GEMM floor


def gemm_shapes(config: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(name, K, N) of one layer's weight GEMMs."""
    h, i = int(config["hidden_size"]), int(config["intermediate_size"])
    return [("qkv", h, 3 * h), ("attention_out", h, h), ("ffn_in", h, i), ("ffn_out", i, h)]


def int8_gemm(rows: int, k: int, n: int, work: Path, threads: int, repeats: int, warmup: int) -> dict[str, float]:
    """Median time of one dynamic-INT8 MatMul (rows x k) @ (k x n) through onnxruntime."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from studentpack.export.quantize import quiet_quantizer

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.05, size=(k, n)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "W"], ["Y"], name="gemm")],
        "gemm",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fp32, int8 = work / f"gemm_{k}x{n}.onnx", work / f"gemm_{k}x{n}.int8.onnx"
    onnx.save(model, str(fp32))
    with quiet_quantizer():
        quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    a = rng.normal(size=(rows, k)).astype(np.float32)
    figures = measure(lambda: session.run(None, {"A": a}), repeats, warmup)
    figures["gops"] = round(2 * rows * k * n / (figures["median_ms"] / 1000) / 1e9, 1)
    return figures


def gemm_floor(
    config: dict[str, Any], batch: int, seq: int, work: Path, threads: int, repeats: int, warmup: int
) -> dict[str, Any]:
    layers = int(config["num_hidden_layers"])
    shapes = {}
    for name, k, n in gemm_shapes(config):
        shapes[name] = {"k": k, "n": n, **int8_gemm(batch * seq, k, n, work, threads, repeats, warmup)}
    per_layer = sum(s["median_ms"] for s in shapes.values())
    return {"rows": batch * seq, "layers": layers, "shapes": shapes, "floor_ms": round(per_layer * layers, 3)}


# ------------------------------------------------------------------------------------------- main


def bench_model(name: str, model_dir: Path, onnx_dir: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from studentpack import adapter
    from studentpack.sources import read_model_config

    torch.set_num_threads(args.threads)
    config = read_model_config(model_dir)
    tokenizer = adapter.load_tokenizer(model_dir)
    record: dict[str, Any] = {
        "path": str(model_dir),
        "layers": config["num_hidden_layers"],
        "hidden": config["hidden_size"],
        "sizes_mb": {v: round((onnx_dir / v / "model.onnx").stat().st_size / 2**20, 2) for v in VARIANT_OF.values()},
        "int8": json.loads((onnx_dir / "int8-dynamic" / "export.json").read_text()).get("isa"),
        "batches": {},
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        feeds = inputs(tokenizer, batch, args.seq, ["input_ids", "attention_mask", "token_type_ids"])
        repeats = args.repeats if batch <= 8 else max(3, args.repeats // 2)
        interleaved = args.schedule == "interleaved"
        factories: dict[str, Callable[[], Callable[[], Any]]] = {"eager": partial(eager_runner, model_dir, feeds)}
        for engine, variant in VARIANT_OF.items():
            factories[engine] = partial(onnx_runner, onnx_dir / variant, feeds, args.threads, not interleaved)
        if interleaved:
            rows: dict[str, Any] = measure_interleaved({k: f() for k, f in factories.items()}, repeats, args.warmup)
        else:
            rows = measure_blocks(factories, repeats, args.warmup)
        eager = rows["eager"]["median_ms"]
        speedup = {engine: round(eager / rows[engine]["median_ms"], 2) for engine in ENGINES[1:]}
        floor = gemm_floor(config, batch, args.seq, work, args.threads, repeats, args.warmup)
        rows["speedup_vs_eager"] = speedup
        rows["int8_gemm_floor"] = floor
        rows["int8_vs_floor"] = round(floor["floor_ms"] / rows["onnx-int8"]["median_ms"], 3)
        record["batches"][str(batch)] = rows
        print(
            f"{name} b{batch}: eager {eager:.1f} ms | "
            + " | ".join(f"{e} {rows[e]['median_ms']:.1f} ms ({speedup[e]}x)" for e in ENGINES[1:])
            + f" | int8 GEMM floor {floor['floor_ms']:.1f} ms ({rows['int8_vs_floor']:.0%} of it reached)",
            file=sys.stderr,
        )
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import onnxruntime
    import torch

    from studentpack.provenance import cpu_flags, machine, package_versions
    from studentpack.sources import packaged_teacher_dir

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        teacher = packaged_teacher_dir()
        models = {"teacher": teacher, "student": make_student(teacher, work / "student-l3")}
        results = {}
        for name in args.models.split(","):
            print(f"{name}: exporting", file=sys.stderr)
            onnx_dir = export(models[name], work / f"{name}-onnx", args.isa, args.threads)
            results[name] = bench_model(name, models[name], onnx_dir, args, work)
    teacher_rows = results.get("teacher", {}).get("batches", {})
    aim = {
        "int8_speedup_b32_ge_2": teacher_rows.get("32", {}).get("speedup_vs_eager", {}).get("onnx-int8", 0) >= 2.0,
        "int8_speedup_b1_ge_2_5": teacher_rows.get("1", {}).get("speedup_vs_eager", {}).get("onnx-int8", 0) >= 2.5,
    }
    report = {
        "benchmark": "bench_export",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "threads": args.threads,
            "seq": args.seq,
            "batches": args.batches,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "isa": args.isa,
            "eager": "torch eager mode, default attention (sdpa), inference_mode, + mean pooling/L2",
            "onnx": "onnxruntime CPUExecutionProvider, ORT_ENABLE_ALL, intra_op threads as above, inter_op 1",
        },
        "machine": {
            **machine(),
            "cpu_flags": [f for f in cpu_flags() if "avx" in f or "vnni" in f or "amx" in f],
            "onnxruntime_providers": onnxruntime.get_available_providers(),
            # other processes on the same cores contaminate timings: compare with cpu_count
            "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
            "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": package_versions(),
        "models": results,
        "aim": aim,
        "note": args.note,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
