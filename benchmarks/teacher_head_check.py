"""How much of a fine-tuned classifier a task-distilled student carries before any fine-tuning of its own.

A student distilled from a fine-tuned teacher on the task's text (`studentpack distill --teacher
runs/teacher-sst2 --corpus train.tsv`) learns the teacher's hidden states, pooler included; when its width
is the teacher's, the teacher's own classification layer can read it as it is. This scores that reading
on the eval split: no training, so it isolates what the distillation stage alone transferred.

    python benchmarks/teacher_head_check.py runs/teacher-sst2 l2=runs/l2-sst2/student l3=runs/l3-sst2/student

Writes benchmarks/results/teacher_head_check.json (--out), with the teacher itself as the first row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine
from studentpack.tasks.data import locate, read_table

ROOT = Path(__file__).resolve().parents[1]


def _accuracy(encoder_dir: str, weight: torch.Tensor, bias: torch.Tensor, rows: list[dict[str, Any]]) -> float:
    model = AutoModel.from_pretrained(encoder_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            batch = tokenizer([r["sentence"] for r in chunk], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")  # fmt: skip
            pooled = model(**batch).pooler_output  # [B, H]: tanh(dense([CLS]))
            predicted = (pooled @ weight.T + bias).argmax(-1)  # [B]
            correct += sum(int(p) == int(r["label"]) for p, r in zip(predicted.tolist(), chunk, strict=True))
    return round(100 * correct / len(rows), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("teacher", help="a fine-tuned sequence classifier (`eval --mode finetune` output)")
    parser.add_argument("students", nargs="+", help="NAME=DIR, encoders as wide as the teacher")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "teacher_head_check.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with safe_open(str(Path(args.teacher) / "model.safetensors"), "pt") as weights:
        weight, bias = weights.get_tensor("classifier.weight"), weights.get_tensor("classifier.bias")  # [C, H], [C]
    rows = read_table(locate(args.data, "eval")).rows
    models = {"teacher": args.teacher, **dict(item.split("=", 1) for item in args.students)}
    scores = {name: _accuracy(path, weight, bias, rows) for name, path in models.items()}
    for name, value in scores.items():
        print(f"{name:12s} {value:6.2f}  ({100 * value / scores['teacher']:.1f}% of the teacher)")
    result = {"machine": {**machine(), "cpu_class": cpu_class(cpu_flags())}, "data": locate(args.data, "eval"),
              "n": len(rows), "models": models, "accuracy": scores}  # fmt: skip
    atomic.write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
