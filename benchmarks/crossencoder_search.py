"""The cross-encoder recipe for small students on STS-B: one variant of `eval --mode finetune`'s training
per call, scored on the dev pairs, appended to benchmarks/results/crossencoder_search.json.

    python benchmarks/crossencoder_search.py NAME MODEL [--epochs 3] [--lr 1e-4] [--seed 0] \\
        [--pool cls|mean] [--pooler keep|reinit] [--dropout P] [--both-orders] [--same-segments] \\
        [--head-first EPOCHS] [--warmup FRACTION]

The training is studentpack.tasks.finetune's (AdamW, linear warm-up over 10% and decay, batch 32, the head's
bias at the mean target) on the whole shared train split; each flag changes one thing:
  --pool mean         the head reads the masked mean of the pair's token states instead of [CLS]
  --pooler reinit     the pooler (dense + tanh before the head) starts random instead of the teacher's
  --dropout P         every dropout of the encoder and head at P (the model's own: 0.1)
  --both-orders       each pair also as (second, first): twice the rows
  --same-segments     the second sentence's segment embedding set to the first's
  --head-first N      N epochs of the head and pooler alone at 1e-3 (the encoder frozen) before the full run
  --warmup F          the fraction of steps warming up (default 0.1)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags
from studentpack.tasks import finetune, stsb
from studentpack.tasks.data import read_table
from studentpack.tasks.sets import Columns, stsb_pairs
from studentpack.text.sources import packaged_teacher_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "stsb"
RESULTS = ROOT / "benchmarks" / "results" / "crossencoder_search.json"


def _mean_pooler(model: Any) -> None:
    """The pooler's dense + tanh on the masked mean of the token states instead of the first token."""
    mask: dict[str, torch.Tensor] = {}

    def keep_mask(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        mask["now"] = kwargs["attention_mask"]

    model.bert.register_forward_pre_hook(keep_mask, with_kwargs=True)
    pooler = model.bert.pooler

    def pool(hidden_states: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, H)
        weights = mask["now"].unsqueeze(-1).to(hidden_states.dtype)  # (B, T, 1)
        mean = (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, H)
        return pooler.activation(pooler.dense(mean))

    pooler.forward = pool


def _train_head_first(encoder: Any, rows: tuple[list[str], np.ndarray, list[str]], epochs: int, seed: int) -> None:
    model = encoder.model
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(("classifier", "bert.pooler")))
    firsts, scores, seconds = rows
    finetune.train(encoder, firsts, scores, finetune.TrainSettings(epochs, 1e-3, seed=seed), seconds)
    for param in model.parameters():
        param.requires_grad_(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("model", help="a student directory, or 'default' for the packaged teacher")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", choices=["cls", "mean"], default="cls")
    parser.add_argument("--pooler", choices=["keep", "reinit"], default="keep")
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--both-orders", action="store_true")
    parser.add_argument("--same-segments", action="store_true")
    parser.add_argument("--head-first", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    train = stsb_pairs(read_table(str(SHARED / "train.tsv"), "train"), Columns())
    dev = stsb_pairs(read_table(str(SHARED / "dev.tsv")), Columns())
    model_dir = packaged_teacher_dir() if args.model == "default" else Path(args.model)
    encoder = finetune.build(model_dir, ["similarity"], "cpu", 128, args.seed)
    model = encoder.model
    with torch.no_grad():
        if args.pooler == "reinit":
            model.bert.pooler.dense.weight.normal_(0.0, 0.02)
            model.bert.pooler.dense.bias.zero_()
        if args.same_segments:
            segments = model.bert.embeddings.token_type_embeddings.weight  # (2, H)
            segments[1].copy_(segments[0])
    if args.pool == "mean":
        _mean_pooler(model)
    if args.dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = args.dropout
    firsts, seconds, scores = list(train.first), list(train.second), np.asarray(train.scores)
    if args.both_orders:
        firsts, seconds, scores = firsts + seconds, seconds + firsts, np.concatenate([scores, scores])
    started = time.perf_counter()
    if args.head_first:
        _train_head_first(encoder, (firsts, scores, seconds), args.head_first, args.seed)
    settings = finetune.TrainSettings(args.epochs, args.lr, warmup=args.warmup, seed=args.seed)
    log = finetune.train(encoder, firsts, scores, settings, seconds)
    spearman = stsb.predict(encoder, dev, 64)["spearman"]
    row = {**{k: v for k, v in vars(args).items()}, "spearman": round(100 * spearman, 2), "train_rows": len(firsts),
           "final_loss": round(log.final_loss, 4), "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(json.dumps(row))
    result: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": []}
    result["cpu_class"] = cpu_class(cpu_flags())
    result["data"] = str(SHARED)
    result["runs"].append(row)
    atomic.write_json(RESULTS, result)


if __name__ == "__main__":
    main()
