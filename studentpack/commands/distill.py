"""`studentpack distill`: train a student from a teacher by OD, HS or MHA transfer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "train a student from a teacher (OD, HS or MHA transfer, or a static table)"
DESCRIPTION = """\
Distil a Transformer encoder into a smaller student, task-agnostically, by one of the transfers
compared in Udagawa et al. (EMNLP 2023 Industry):

  mha   Multi-Head Attention relations (MiniLMv2): Q-Q, K-K, V-V relation KL   [best there, at length]
  hs    Hidden States: MSE (or cosine) per mapped layer pair, projected when widths differ   [default]
  od    Output Distribution: T^2 * KL over MLM predictions at masked positions
  emb   the sentence-transformers baseline: MSE between pooled, normalised sentence embeddings
  hs+mha, od+mha, ...  weighted sums (--set hs_weight=..., mha_weight=...)
  static  no transformer: a table of one vector per vocabulary token (Model2Vec's distillation: each
          token run through the teacher, PCA, SIF weights), a sentence the mean of its tokens' rows;
          --static-steps N trains the table on the corpus against the teacher's sentence embeddings.
          Combines with no other method; settings for transformer students are refused with it.
          The student is a Model2Vec directory (model2vec.StaticModel.from_pretrained loads it)

With no arguments it distils the packaged all-MiniLM-L6-v2 into a 3-layer student by HS transfer on
general English that ships with studentpack (embedded:english), cut into sentences and packed side
by side, each encoded as if alone (--split-sentences, --isolate-lines), in a few minutes on a laptop
CPU: the transfer, corpus and inputs that lifted a quick run furthest above its initialisation
(98.7% of the teacher's STS-B; see BENCHMARKS.md). The
result, runs/<method>-l<layers>/student/, is a Hugging Face directory (AutoModel.from_pretrained)
with studentpack.json describing the run.

While it runs, checkpoints (<run>/checkpoints/step-N/: weights, optimizer state and RNG; a few
hundred MB each for the default teacher) let an interrupted run continue with --resume. Once the
student is saved they are deleted; --keep-final-checkpoint keeps the last one.

examples:
  studentpack distill --method mha --student-layers 3 --steps 2000 --out runs/mha-l3
  studentpack distill --method hs --layer-map uniform-last --student-layers 3 --out runs/hs-l3 \\
      --corpus ../shared/data/wikitext-2/valid.txt --corpus ../shared/data/wikitext-2/test.txt
  studentpack distill --method od --student-layers 4 --student-hidden 256 --out runs/od-l4h256
  studentpack distill --method static --static-dim 256 --out runs/static-d256
  studentpack distill --resume runs/mha-l3          # continue an interrupted run
  studentpack distill --config run.yaml --set lr=2e-4 --set student.layers=4
  torchrun --nproc_per_node 2 -m studentpack distill ...     # several processes (or accelerate launch)
"""

# flag -> config key; flags left unset do not override the config file
_FLAG_KEYS: dict[str, str] = {
    "teacher": "teacher",
    "corpus": "corpus",
    "method": "method",
    "student_layers": "student.layers",
    "student_hidden": "student.hidden",
    "student_heads": "student.heads",
    "student_intermediate": "student.intermediate",
    "init_map": "init_map",
    "layer_map": "layer_map",
    "hs_loss": "hs_loss",
    "hs_embeddings": "hs_embeddings",
    "relation_heads": "relation_heads",
    "teacher_layer": "teacher_layer",
    "temperature": "temperature",
    "mlm_weight": "mlm_weight",
    "mask_prob": "mask_prob",
    "fit_head_steps": "fit_head_steps",
    "steps": "steps",
    "batch_size": "batch_size",
    "max_length": "max_length",
    "pack": "pack",
    "isolate_lines": "isolate_lines",
    "split_sentences": "split_sentences",
    "pairs": "pairs",
    "lr": "lr",
    "warmup": "warmup",
    "schedule": "schedule",
    "weight_decay": "weight_decay",
    "clip": "clip",
    "seed": "seed",
    "dropout": "dropout",
    "checkpoint_every": "checkpoint_every",
    "keep_checkpoints": "keep_checkpoints",
    "snapshot_every": "snapshot_every",
    "keep_final_checkpoint": "keep_final_checkpoint",
    "log_every": "log_every",
    "device": "device",
    "precision": "precision",
    "threads": "threads",
    "allow_pickle": "allow_pickle",
    "teacher_cache_mb": "teacher_cache_mb",
    "static_dim": "static_dim",
    "static_sif": "static_sif",
    "static_steps": "static_steps",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    src = parser.add_argument_group("teacher and data")
    src.add_argument(
        "--teacher",
        default=s,
        metavar="DIR|HUB_ID",
        help="teacher encoder: a local HF directory or a hub id (default: packaged all-MiniLM-L6-v2)",
    )
    src.add_argument(
        "--corpus",
        action="append",
        default=s,
        metavar="PATH|hub:NAME[:CONFIG]",
        help="text file (one paragraph per line), table (.tsv, .csv, .jsonl, .json: its text columns, e.g. "
        "sentence or sentence1/sentence2, without the labels, so a task's train split serves), directory of "
        "them, or hub dataset; repeatable "
        "(default: embedded:english, general English shipped with studentpack; embedded:pydoc is Python's "
        "reference text)",
    )
    src.add_argument(
        "--allow-pickle",
        action="store_true",
        default=s,
        help="allow loading pytorch_model.bin (pickle can run code; only for trusted sources)",
    )

    how = parser.add_argument_group("method")
    how.add_argument(
        "--method", default=s, help="hs (default), mha, od, emb, a combination like hs+mha, or static (alone)"
    )
    how.add_argument(
        "--layer-map",
        default=s,
        metavar="STRATEGY|PAIRS",
        help="HS layer pairs: last, top, uniform, uniform-last (default) or explicit 1:2,2:4,3:6",
    )
    how.add_argument("--hs-loss", choices=["mse", "cosine"], default=s, help="HS distance (default mse)")
    how.add_argument("--hs-embeddings", action="store_true", default=s, help="HS: also match the embedding outputs")
    how.add_argument(
        "--relation-heads",
        type=int,
        default=s,
        help="MHA relation heads (default 48 if it divides both widths, else the largest common divisor <= 64)",
    )
    how.add_argument(
        "--teacher-layer",
        type=int,
        default=s,
        help="MHA teacher layer (default: last for <= 12 layers, upper-middle for deeper teachers)",
    )
    how.add_argument("--temperature", type=float, default=s, help="OD softmax temperature (default 2.0)")
    how.add_argument("--mlm-weight", type=float, default=s, help="OD: weight of the hard MLM term (default 0)")
    how.add_argument("--mask-prob", type=float, default=s, help="OD masking probability (default 0.15)")
    how.add_argument(
        "--fit-head-steps",
        type=int,
        default=s,
        help="OD with a headless teacher: steps to fit its MLM head first (default 300, cached)",
    )

    from studentpack.commands.distill_static import add_static_arguments

    add_static_arguments(parser, s)

    student = parser.add_argument_group("student shape (defaults derived from the teacher)")
    student.add_argument("--student-layers", type=int, default=s, help="layers (default: half the teacher's)")
    student.add_argument("--student-hidden", type=int, default=s, help="width (default: the teacher's)")
    student.add_argument("--student-heads", type=int, default=s, help="attention heads (default: keep head width)")
    student.add_argument("--student-intermediate", type=int, default=s, help="FFN width (default: teacher's ratio)")
    student.add_argument(
        "--init-map",
        default=s,
        metavar="STRATEGY|PAIRS",
        help="teacher layers copied into the student when widths match (default: the HS map, else uniform-last)",
    )

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--steps", type=int, default=s, help="optimizer steps (default 150)")
    opt.add_argument("--batch-size", type=int, default=s, help="sequences per process per step (default 16)")
    opt.add_argument("--max-length", type=int, default=s, help="tokens per sequence (default 128)")
    opt.add_argument(
        "--pack",
        action=argparse.BooleanOptionalAction,
        default=s,
        help="fill full-length rows with consecutive lines (default: on; --no-pack: a line per row, padded)",
    )
    opt.add_argument(
        "--isolate-lines",
        action=argparse.BooleanOptionalAction,
        default=s,
        help="packed lines each keep their own [CLS]/[SEP], positions and attention, so the model sees short "
        "lines as it would alone, minus the padding (default: on; --no-isolate-lines: packed lines attend to "
        "each other, as in BERT pre-training)",
    )
    opt.add_argument(
        "--split-sentences",
        action=argparse.BooleanOptionalAction,
        default=s,
        help="cut corpus paragraphs into sentences before tokenizing (a heuristic on . ! ?), so the student "
        "trains on the units a sentence embedder encodes (default: on; --no-split-sentences: whole lines)",
    )
    opt.add_argument(
        "--pairs",
        action="store_true",
        default=s,
        help="read each --corpus table's two text columns (sentence1/sentence2, question1/question2, "
        "premise/hypothesis) as one input per row, [CLS] first [SEP] second [SEP] (the second side type 1), never "
        "split: a cross-encoder's inputs, for a first stage from a fine-tuned cross-encoder teacher (default: off)",
    )
    opt.add_argument("--lr", type=float, default=s, help="peak AdamW learning rate (default 1e-3)")
    opt.add_argument("--warmup", type=float, default=s, help="warm-up as a fraction of steps (default 0.1)")
    opt.add_argument("--schedule", choices=["linear", "cosine", "constant"], default=s, help="decay (default linear)")
    opt.add_argument("--weight-decay", type=float, default=s, help="AdamW weight decay (default 0.01)")
    opt.add_argument("--clip", type=float, default=s, help="gradient-norm clip, 0 to disable (default 1.0)")
    opt.add_argument("--seed", type=int, default=s, help="random seed (default 0)")
    opt.add_argument(
        "--dropout",
        type=float,
        default=s,
        help="student dropout while distilling (default 0; the saved config keeps the teacher's)",
    )

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, help="run directory (default runs/<method>-l<layers>)")
    run.add_argument("--overwrite", action="store_true", help="replace a finished or unfinished run in --out")
    run.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint"
    )
    run.add_argument(
        "--allow-changed-inputs",
        action="store_true",
        help="with --resume: continue even though the teacher or corpus changed since the run started",
    )
    run.add_argument("--checkpoint-every", type=int, default=s, help="steps between checkpoints (default 100)")
    run.add_argument(
        "--keep-checkpoints", type=int, default=s, help="checkpoints kept while the run goes on (default 2)"
    )
    run.add_argument(
        "--keep-final-checkpoint",
        action="store_true",
        default=s,
        help="once the student is saved, keep the last checkpoint (default: delete them all)",
    )
    run.add_argument("--log-every", type=int, default=s, help="steps between log lines (default 10)")
    run.add_argument(
        "--snapshot-every",
        type=int,
        default=s,
        help="also save the student every N steps in snapshots/ (default: never)",
    )
    run.add_argument("--device", default=s, help="auto (default), cpu or cuda; cuda without a GPU is an error")
    run.add_argument("--precision", choices=["no", "bf16", "fp16"], default=s, help="mixed precision (default no)")
    run.add_argument("--threads", type=int, default=s, help="torch CPU threads (default: torch's choice)")
    run.add_argument(
        "--teacher-cache-mb",
        type=int,
        default=s,
        metavar="MB",
        help="run the teacher once per corpus row and keep its features, when the run sees each row 1.5 times "
        "or more and they fit in MB (default 2048; 0: run the teacher every step). Not with OD, which masks "
        "afresh each step",
    )
    run.add_argument("--config", type=Path, help="YAML/TOML/JSON file with any of the settings above")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set student.layers=4 (repeatable)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def _explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for flag, key in _FLAG_KEYS.items():
        if hasattr(args, flag):
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = getattr(args, flag)
    return data


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_config(args: argparse.Namespace) -> Any:
    from studentpack.config import apply_sets, build, load_file
    from studentpack.distill.config import STATIC, DistillConfig, canonical_method
    from studentpack.distill.static_run import refuse_other_settings
    from studentpack.ground.errors import UserError

    data = load_file(args.config) if args.config else {}
    data = apply_sets(_merge(data, _explicit_settings(args)), args.set)
    if "method" in data:  # a combination in any order: "hs+emb" is "emb+hs"
        data["method"] = canonical_method(data["method"])
    if data.get("method") == STATIC:
        refuse_other_settings(data)
    elif given := sorted(key for key in data if key.startswith("static_")):
        raise UserError(f"--{given[0].replace('_', '-')} is a setting of --method static only")
    return build(DistillConfig, data)


def run(args: argparse.Namespace) -> int:
    from studentpack.ground.numerics import tune_for_training

    tuning = tune_for_training()  # first, before torch's thread pool exists and before large allocations
    from studentpack.distill.rundir import (
        RunDir,
        check_fresh,
        check_inputs,
        check_resumable,
        clear,
        input_digests,
        write_config,
        write_inputs,
    )
    from studentpack.ground.errors import UserError

    if args.resume:
        if args.out or args.config or args.set or _explicit_settings(args) or args.overwrite:
            raise UserError("--resume continues a run with its saved settings; give no other settings")
        run_dir = RunDir(args.resume)
        config = check_resumable(run_dir)
    else:
        config = resolve_config(args)
        if config.method == "static":
            from studentpack.commands.distill_static import run_static_command

            return run_static_command(args, config)

    from studentpack.distill.plan import make_plan

    plan = make_plan(config)  # every cheap check, before loading any model
    if plan.relation_note not in ("", "default 48", "requested"):
        print(f"studentpack distill: note: relation heads: {plan.relation_note}", file=sys.stderr)
    digests = input_digests(plan)
    if args.resume:
        note = check_inputs(run_dir, digests, args.allow_changed_inputs)
        if note:
            print(f"studentpack distill: note: {note}", file=sys.stderr)
    else:
        out = args.out or Path("runs") / f"{plan.config.method}-l{plan.shape.layers}" / ""
        run_dir = RunDir(Path(out))
        check_fresh(run_dir, args.overwrite)

    from studentpack.distill.trainer import Distiller

    distiller = Distiller(plan, run_dir, progress=not args.quiet, cpu_tuning=tuning)
    if distiller.acc.is_main_process and not args.resume:
        clear(run_dir)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, config)
        write_inputs(run_dir, digests)
    distiller.acc.wait_for_everyone()
    student = distiller.run(resume=bool(args.resume))
    if distiller.acc.is_main_process:
        _summary(student)
    return 0


def quote_path(path: Path) -> str:
    from shlex import quote

    return quote(str(path))


def _summary(student: Path) -> None:
    import json

    from studentpack.distill.checkpoint import latest_checkpoint

    manifest = json.loads((student / "studentpack.json").read_text())
    terms = ", ".join(f"{k} {v:.4f}" for k, v in manifest["final_terms"].items())
    kept = latest_checkpoint(student.parent)
    print(
        f"student: {student}\n"
        f"  {manifest['student']['layers']} layers x {manifest['student']['hidden']} wide, "
        f"{manifest['student']['parameters'] / 1e6:.1f}M parameters, init {manifest['init']['kind']}\n"
        f"  {manifest['method']}: {manifest['steps']} steps, {manifest['tokens_seen']:,} tokens, "
        f"{manifest['tokens_per_s']:,.0f} tokens/s\n"
        f"  final loss terms: {terms}" + (f"\n  final checkpoint kept: {kept[1]}" if kept else "")
    )
    print("\n".join(f"next: {command}" for command in next_commands(student)))


def next_commands(student: Path) -> list[str]:
    """What to run after distilling, with this run's paths: score it, then export and serve it."""
    from shlex import quote

    model, variant = quote(str(student)), quote(str(student.parent / "onnx" / "int8-dynamic"))
    return [
        f"studentpack eval {model} --task agreement",
        f"studentpack eval {model} --task stsb --data PATH/TO/stsb/dev.tsv",
        f"studentpack export {model} --onnx && studentpack serve {variant}",
    ]
