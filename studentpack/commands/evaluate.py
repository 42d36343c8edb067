"""`studentpack eval`: score a model on STS-B, SST-2 or agreement with its teacher.

torch, transformers and scikit-learn are imported only inside `run` (through studentpack.tasks.run's
functions), so `studentpack eval --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "score a model on STS-B, SST-2 or agreement with its teacher"
DESCRIPTION = """\
Score a model directory, an exported ONNX variant directory or a served URL with one scoring code.

tasks and modes (the first mode is the default; a fine-tuned classifier defaults to `predict`):
  stsb       zeroshot  Spearman x100 of cosine(mean-pooled embeddings) vs the 0-5 gold score
             finetune  fine-tune encoder + regression head on train pairs (a cross-encoder, saved
                       like sst2's), Spearman on the eval split
             predict   a fine-tuned STS-B regression model's own outputs
             biencoder fine-tune the sentence embedding itself with a cosine loss on train pairs
                       (sentence-transformers' protocol); saves a sentence embedder that serve, export
                       and eval take (--out, default <model>/../stsb-biencoder), Spearman on the eval split.
                       The one for 2-layer sentence embedders; a 2-layer cross-encoder needs the
                       two stages below, its first with --method hs+mha (BENCHMARKS.md)
  sst2       probe     logistic regression on frozen embeddings of --train-limit train rows
                       (default 10000, seeded), accuracy % on the eval split
             finetune  fine-tune encoder + classification head end to end; saves a Hugging Face
                       sequence-classification directory (--out, default <model>/../<task>)
             predict   a fine-tuned classifier's own logits
  agreement  zeroshot  no labels: recall@10 x100 (metric): for each text, how many of the teacher's
                       10 nearest neighbours among the other texts the student also ranks in its 10
                       nearest; also mean and min cosine student vs teacher (equal widths) and the
                       rank correlation of pairwise similarities. BENCHMARKS.md ties recall@10 on
                       the default texts to % of the teacher on labelled STS-B and SST-2

task distillation: `--mode finetune --teacher DIR` (stsb or sst2) first runs DIR, a fine-tuned model of
the same task (the teacher's own `--mode finetune` output, its ONNX export or a URL), over the train
rows; its outputs then join the gold labels in the loss: (1 - w) * gold + w * teacher, w = --soft-weight
(default 0.5); for sst2 the teacher term is the KL divergence at --temperature (default 2.0), for stsb
the squared error to the teacher's score. On SST-2, students first distilled from the fine-tuned
teacher's directory on the task's own text (`studentpack distill --teacher DIR --corpus TRAIN.tsv`), then
tuned with `--teacher DIR --lr 3e-5 --soft-weight 1 --temperature 1` (TinyBERT's two stages), kept 99.0%
(3 layers, two seeds) and 97.1% (2 layers, first stage on the train split grown by
benchmarks/augment_text.py; 97.3% with a second first-stage seed) of the teacher (BENCHMARKS.md,
*Two-stage task distillation*). Rows grown that way have no gold label of their own: train on them with
`--train FILE --soft-weight 1`, as the 3-layer STS-B cross-encoder did (96.3% of its teacher, against
88.4% on the gold scores); first distilled on those pairs read as pairs (`studentpack distill --teacher
DIR --corpus TRAIN.tsv --pairs`), it keeps 99.0% (two seeds; BENCHMARKS.md, *A first stage on pairs*),
and a 2-layer one taught by it with --method hs+mha keeps 95.7% (*Two layers with relations on pairs*).

data (--data): a file (.tsv, .csv, .jsonl, .json, .txt), a directory with train.* and dev.* (the
layout of ../shared/data), or hub:glue/stsb, hub:glue/sst2, hub:NAME[:CONFIG] (needs `datasets`
and network; what stsb and sst2 try without --data). Agreement defaults to embedded:heldout, 1,000
sentences of general English written for studentpack that no shipped distillation corpus contains
(embedded:docstrings, standard-library prose, is the other built-in choice).

output: a table on stdout (or one JSON object with --json); the result is merged into eval.json
next to the model (<model>/../eval.json, under the model directory's name) unless --out PATH or
--no-save. A run's exported variants report to the run: <run>/onnx/<variant> saves into
<run>/eval.json, beside <run>/student's results, under the name onnx/<variant>. Texts longer than
--max-length are truncated and counted.

examples:
  studentpack eval runs/mha-l3/student --task stsb --data ../shared/data/stsb/dev.tsv
  studentpack eval runs/mha-l3/student --task sst2 --data ../shared/data/sst2 --mode probe
  studentpack eval runs/mha-l3/student --task sst2 --data ../shared/data/sst2 --mode finetune \\
      --train-limit 8000 --out runs/mha-l3/sst2
  studentpack eval default --task sst2 --data ../shared/data/sst2 --mode finetune --out runs/teacher-sst2
  studentpack eval runs/mha-l3/student --task sst2 --data ../shared/data/sst2 --mode finetune \\
      --teacher runs/teacher-sst2 --out runs/mha-l3/sst2-distilled
  studentpack eval runs/mha-l3/student --task agreement --teacher default --json
  studentpack eval runs/mha-l3/onnx/int8-dynamic --task stsb --data ../shared/data/stsb/dev.tsv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="model directory, ONNX variant directory, URL, or `default`")
    parser.add_argument("--task", choices=("stsb", "sst2", "agreement"), help="what to score (required)")
    parser.add_argument("--mode", help="task mode (see above); default: the task's first mode")
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="eval data: file, directory with train.*/dev.*, or hub:NAME[:CONFIG]")
    data.add_argument("--train", help="train split file, when --data is a single file")
    data.add_argument("--split", help="eval split name in a data directory or hub dataset (default dev/validation)")
    data.add_argument("--text-column", help="text column (stsb: sentence1; sst2: sentence; agreement: text)")
    data.add_argument("--pair-column", help="second-sentence column (stsb: sentence2)")
    data.add_argument("--label-column", help="gold column (stsb: score or label; sst2: label)")
    data.add_argument("--limit", type=int, help="score only the first N eval examples")
    data.add_argument("--train-limit", type=int, help="seeded random subset of N train rows (probe default 10000)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--teacher",
        help="agreement: the teacher (default: from studentpack.json, else packaged); finetune: a fine-tuned "
        "classifier of the task whose outputs are soft targets",
    )
    model.add_argument("--max-length", type=int, help="tokens per text; longer ones are truncated (default 128)")
    model.add_argument("--batch-size", type=int, help="texts per inference batch (default 32)")
    model.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    model.add_argument("--threads", type=int, help="torch CPU threads")
    model.add_argument("--allow-pickle", action="store_const", const=True, help="allow pytorch_model.bin weights")
    train = parser.add_argument_group("probe and fine-tuning")
    train.add_argument("--seed", type=int, help="seed for train subsets, head init, shuffling, dropout (default 0)")
    train.add_argument("--probe-c", type=float, help="probe inverse regularisation strength (default 1.0)")
    train.add_argument("--epochs", type=int, help="fine-tuning epochs (default 1)")
    train.add_argument("--lr", type=float, help="fine-tuning peak learning rate (default 5e-5)")
    train.add_argument("--train-batch-size", type=int, help="fine-tuning batch size (default 32)")
    train.add_argument("--warmup", type=float, help="fraction of steps warming up linearly (default 0.1)")
    train.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    train.add_argument("--soft-weight", type=float, help="finetune --teacher: loss share on its outputs (default 0.5)")
    train.add_argument("--temperature", type=float, help="finetune --teacher: softmax temperature (default 2.0)")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        help="eval.json file or directory (default: <model>/../eval.json, or <run>/eval.json for <run>/onnx/<variant>);"
        " with --mode finetune: the fine-tuned model dir",
    )
    out.add_argument("--no-save", dest="save", action="store_const", const=False, help="write no files")
    out.add_argument("--overwrite", action="store_const", const=True, help="replace an existing fine-tuned model dir")
    out.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object instead of a table")
    out.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")
    parser.add_argument("--config", help="YAML/TOML/JSON file with these options (keys as the flags, with _)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override")


_NOT_CONFIG = {"config", "sets", "as_json", "quiet", "verb", "_module"}


def config_mapping(args: argparse.Namespace) -> dict[str, Any]:
    """Config file, then flags given on the command line, then --set overrides."""
    from studentpack.config import apply_sets, load_file

    mapping: dict[str, Any] = load_file(args.config) if args.config else {}
    for key, value in vars(args).items():
        if key not in _NOT_CONFIG and value is not None:
            mapping[key] = value
    return apply_sets(mapping, args.sets)


def run(args: argparse.Namespace) -> int:
    from studentpack.config import build
    from studentpack.ground.errors import UserError
    from studentpack.tasks import EvalConfig, evaluate
    from studentpack.tasks.report import table

    mapping = config_mapping(args)
    for key in ("model", "task"):
        if not mapping.get(key):
            what = "a MODEL" if key == "model" else "--task (stsb, sst2 or agreement)"
            raise UserError(f"give {what}")
    cfg = build(EvalConfig, mapping)
    progress = not args.quiet and sys.stderr.isatty()
    evaluation = evaluate(cfg, progress=progress)
    if args.as_json:
        print(json.dumps(evaluation.result.to_json()))
    else:
        print(table(evaluation.result))
    notes = [*evaluation.notes]
    if evaluation.saved_to is not None:
        notes.append(f"result saved to {evaluation.saved_to}")
    for note in [] if args.quiet else notes:
        print(f"studentpack eval: {note}", file=sys.stderr)
    return 0
