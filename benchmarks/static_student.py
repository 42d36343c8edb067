"""What a static student keeps of its teacher, and how fast it encodes.

Distils the packaged all-MiniLM-L6-v2 with `studentpack distill --method static`, plain (--static-steps 0)
and trained on the default corpus (--static-steps N), then scores the teacher (PyTorch) and each student
through `studentpack.tasks`: zero-shot STS-B dev Spearman and the SST-2 probe (10,000 train rows, the
eval default), each as % of the teacher; and the in-process encode throughput (texts/s, the shipped
held-out English, batch 32, median of 3) of each student against the teacher's int8-dynamic ONNX graph
(2 threads). Writes benchmarks/results/static_student.json.

    python benchmarks/static_student.py [--steps 0,300] [--runs runs/static] [--int8 DIR] [--remeasure]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from studentpack.cli import main as cli
from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine, package_versions
from studentpack.tasks import sst2, stsb
from studentpack.tasks.data import read_table
from studentpack.tasks.options import DEFAULT_PROBE_TRAIN
from studentpack.tasks.sets import Columns, LabeledSet, PairSet, sample, sst2_labeled, stsb_pairs
from studentpack.tasks.shipped import heldout_english

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results" / "static_student.json"
INT8 = Path("/tmp/fresh2/runs/pipeline/teacher/onnx/int8-dynamic")
ROUNDS = 7  # remeasure: alternating rounds, the median of each


class TableEncoder:
    """load_static(...).encode behind the TextEncoder protocol, for a checkout without engines.static."""

    def __init__(self, path: Path) -> None:
        from studentpack.model.static_format import load_static

        self.table = load_static(path)
        self.description, self.max_length, self.truncated = str(path), self.table.max_length or 0, 0

    def encode(self, texts: Any, batch_size: int = 32, progress: bool = False) -> Any:
        return self.table.encode(texts)


class TokenIds:
    """Only the token ids of a static student's texts, through its tokenizer or its word cache, in batches."""

    def __init__(self, path: Path, cached: bool) -> None:
        from studentpack.model.static_format import load_static
        from studentpack.model.word_ids import WordIds

        tokenizer = load_static(path).tokenizer
        self.words = WordIds(tokenizer) if cached else None
        self.tokenizer = tokenizer

    def encode(self, texts: Any, batch_size: int = 32, progress: bool = False) -> None:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            if self.words is not None:
                self.words.ids(batch)
            else:
                [e.ids for e in self.tokenizer.encode_batch_fast(batch, add_special_tokens=False)]


def open_student(path: Path) -> Any:
    try:
        import studentpack.engines.static  # noqa: F401  (the engine, where this checkout has it)
    except ImportError:
        return TableEncoder(path)
    from studentpack.engines import open_model

    return open_model(str(path))


def scores(encoder: Any, pairs: PairSet, train: LabeledSet, dev: LabeledSet) -> dict[str, float]:
    started = time.perf_counter()
    spearman = stsb.zeroshot(encoder, pairs)["spearman"]
    probe, _ = sst2.probe(encoder, train, dev)
    return {
        "stsb_spearman": spearman,
        "sst2_accuracy": probe["accuracy"],
        "score_seconds": time.perf_counter() - started,
    }


def throughput(encoder: Any, texts: list[str], runs: int = 3) -> dict[str, Any]:
    encoder.encode(texts[:64], batch_size=32)  # warm: first-call allocations and lazy set-up
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        encoder.encode(texts, batch_size=32)
        seconds.append(time.perf_counter() - started)
    return {"texts": len(texts), "seconds": seconds, "texts_per_s": len(texts) / statistics.median(seconds)}


def remeasure(args: argparse.Namespace) -> None:
    """Only the throughputs of the students in an earlier result and of the int8 teacher, in alternating
    rounds, so that load from other processes on a shared machine falls on both alike."""
    from studentpack.engines import open_model

    result = json.loads(args.out.read_text())
    texts = heldout_english() * 4  # 4,000 texts: a round of the static encoders lasts long enough to time
    encoders = {"int8": open_model(str(args.int8), threads=2)}
    encoders |= {name: open_student(args.runs / name / "student") for name in result["students"]}
    default = args.runs / list(result["students"])[-1] / "student"  # the default, trained table
    # beside them, in the same rounds: that student with the tokenizer's own batch call instead of the
    # word cache (where its ids came from before the cache; the pooling is today's), and the two ways of
    # getting token ids alone
    uncached = open_student(default)
    uncached.table.words = None
    encoders |= {"tokenizer path": uncached, "ids: tokenizer": TokenIds(default, cached=False),
                 "ids: word cache": TokenIds(default, cached=True)}  # fmt: skip
    for encoder in encoders.values():
        encoder.encode(texts[:64], batch_size=32)
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(ROUNDS):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts, batch_size=32)
            seconds[name].append(time.perf_counter() - started)
    rate = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    result["teacher"]["int8_dynamic"].update(seconds=seconds["int8"], texts_per_s=rate["int8"])
    for name, row in result["students"].items():
        row["throughput"].update(seconds=seconds[name], texts_per_s=rate[name])
        row["throughput_x_int8"] = rate[name] / rate["int8"]
    # the rounds above find every word cached after the first; a cold cache (each of the 1,000 texts' words
    # looked up for the first time) is the worst case, timed on its own
    cold = []
    for _ in range(ROUNDS):
        student = encoders[list(result["students"])[-1]]
        student.table.words.cache.clear()
        started = time.perf_counter()
        student.encode(texts[:1000], batch_size=32)
        cold.append(time.perf_counter() - started)
    rate["default, cold word cache"] = 1000 / statistics.median(cold)
    result["bounds"] = {name: {"texts_per_s": rate[name], "x_int8": rate[name] / rate["int8"]}
                        for name in ("tokenizer path", "ids: tokenizer", "ids: word cache",
                                     "default, cold word cache")}  # fmt: skip
    for name in [*result["students"], *result["bounds"]]:
        print(f"{name}: {rate[name]:,.0f} texts/s, {rate[name] / rate['int8']:.0f}x int8 ({rate['int8']:,.0f} texts/s)")
    result["cpu_class"] = cpu_class(cpu_flags())
    result["throughput_rounds"] = f"{ROUNDS} alternating rounds over {len(texts):,} texts, remeasured"
    atomic.write_json(args.out, result)


def distill(out: Path, steps: int) -> dict[str, Any]:
    started = time.perf_counter()
    argv = ["distill", "--method", "static", "--static-steps", str(steps), "--out", str(out), "--overwrite", "--quiet"]
    if cli(argv) != 0:
        raise SystemExit(f"static distillation with {steps} steps failed")
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    return {"wall_seconds": time.perf_counter() - started, "vocabulary": manifest["vocabulary"],
            "training": manifest["training"], "dim": manifest["student"]["hidden"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="0,300", help="comma-separated --static-steps; 0 is plain")
    parser.add_argument("--runs", type=Path, default=Path("runs/static"))
    parser.add_argument("--int8", type=Path, default=INT8, help="the teacher's int8-dynamic ONNX variant")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--remeasure", action="store_true", help="only the throughputs, into an existing --out")
    args = parser.parse_args()
    if args.remeasure:
        return remeasure(args)
    import torch

    torch.set_num_threads(2)
    pairs = stsb_pairs(read_table(str(SHARED / "stsb" / "dev.tsv")), Columns())
    train = sample(sst2_labeled(read_table(str(SHARED / "sst2" / "train.tsv"), "train"), Columns()),
                   DEFAULT_PROBE_TRAIN, 0)  # fmt: skip
    dev = sst2_labeled(read_table(str(SHARED / "sst2" / "dev.tsv")), Columns())
    texts = heldout_english()
    from studentpack.engines import open_model
    from studentpack.text.sources import packaged_teacher_dir

    teacher = scores(open_model(str(packaged_teacher_dir())), pairs, train, dev)
    int8 = throughput(open_model(str(args.int8), threads=2), texts)
    students: dict[str, Any] = {}
    for steps in (int(s) for s in args.steps.split(",")):
        name = "plain" if steps == 0 else f"trained-{steps}"
        run = distill(args.runs / name, steps)
        encoder = open_student(args.runs / name / "student")
        row = {**run, **scores(encoder, pairs, train, dev), "throughput": throughput(encoder, texts)}
        row["stsb_pct_of_teacher"] = 100 * row["stsb_spearman"] / teacher["stsb_spearman"]
        row["sst2_pct_of_teacher"] = 100 * row["sst2_accuracy"] / teacher["sst2_accuracy"]
        row["throughput_x_int8"] = row["throughput"]["texts_per_s"] / int8["texts_per_s"]
        students[name] = row
        print(f"{name}: STS-B {row['stsb_pct_of_teacher']:.1f}%, SST-2 {row['sst2_pct_of_teacher']:.1f}% of the "
              f"teacher, {row['throughput_x_int8']:.0f}x int8, distil {run['wall_seconds']:.0f} s")  # fmt: skip
    result = {"teacher": {"pytorch": teacher, "int8_dynamic": {"path": str(args.int8), "threads": 2, **int8}},
              "students": students, "texts": "studentpack.tasks.shipped.heldout_english()", "batch_size": 32,
              "sst2_train_rows": len(train.texts), "stsb_pairs": len(pairs.scores), "cpu_class": cpu_class(cpu_flags()),
              "machine": machine(), "versions": package_versions()}  # fmt: skip
    atomic.write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
