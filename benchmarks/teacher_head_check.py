"""How much of a fine-tuned classifier a task-distilled student carries before any fine-tuning of its own.

A student distilled from a fine-tuned teacher on the task's text (`studentpack distill --teacher
runs/teacher-sst2 --corpus train.tsv`) learns the teacher's hidden states, pooler included; when its width
is the teacher's, the teacher's own classification layer can read it as it is. This scores that reading
on the eval split: no training, so it isolates what the distillation stage alone transferred.

    python benchmarks/teacher_head_check.py runs/teacher-sst2 l2=runs/l2-sst2/student l3=runs/l3-sst2/student
    python benchmarks/teacher_head_check.py runs/teacher-stsb l3=runs/l3-pairs/student --data ../shared/data/stsb

A cross-encoder teacher (STS-B: one output, pairs) is scored by Spearman x100 on the pairs read together;
a classifier (SST-2) by accuracy %.

Writes benchmarks/results/teacher_head_check.json (--out), with the teacher itself as the first row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine
from studentpack.tasks.data import locate, read_table
from studentpack.tasks.metrics import spearman

ROOT = Path(__file__).resolve().parents[1]


def _outputs(encoder_dir: str, weight: torch.Tensor, bias: torch.Tensor, rows: list[dict[str, Any]]) -> torch.Tensor:
    """The teacher's layer over the encoder's pooled [CLS], (N, C): single sentences, or pairs read together."""
    model = AutoModel.from_pretrained(encoder_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    pairs = "sentence2" in rows[0]
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            sides = ([r["sentence1"] for r in chunk], [r["sentence2"] for r in chunk]) if pairs else (
                [r["sentence"] for r in chunk],)  # fmt: skip
            batch = tokenizer(*sides, padding=True, truncation=True, max_length=128, return_tensors="pt")
            pooled = model(**batch).pooler_output  # [B, H]: tanh(dense([CLS]))
            outputs.append(pooled @ weight.T + bias)  # [B, C]
    return torch.cat(outputs)


def _score(encoder_dir: str, weight: torch.Tensor, bias: torch.Tensor, rows: list[dict[str, Any]]) -> float:
    """Accuracy % for a classifier (SST-2), Spearman x100 for a one-output regression (STS-B pairs)."""
    outputs = _outputs(encoder_dir, weight, bias, rows)
    if outputs.shape[1] == 1:
        gold = np.array([float(r["score"]) for r in rows])
        return round(100 * spearman(outputs[:, 0].numpy(), gold), 2)
    gold = np.array([int(r["label"]) for r in rows])
    return round(100 * float(np.mean(outputs.argmax(-1).numpy() == gold)), 2)


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
    scores = {name: _score(path, weight, bias, rows) for name, path in models.items()}
    for name, value in scores.items():
        print(f"{name:12s} {value:6.2f}  ({100 * value / scores['teacher']:.1f}% of the teacher)")
    result = {"machine": {**machine(), "cpu_class": cpu_class(cpu_flags())}, "data": locate(args.data, "eval"),
              "n": len(rows), "models": models, "metric": "spearman" if weight.shape[0] == 1 else "accuracy",
              "scores": scores}  # fmt: skip
    atomic.write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
