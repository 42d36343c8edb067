"""`studentpack export`: ONNX variants (fp32, fused, int8, fp16), each gated on parity or accuracy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "write ONNX and OpenVINO variants (fp32, fused, int8, fp16), each gated on parity/accuracy"
DESCRIPTION = """\
Export a model directory (a distilled student, a teacher, or a classifier fine-tuned by
`studentpack eval --mode finetune`) to variants that ONNX Runtime or OpenVINO run fast:

  fp32           torch.onnx.export, dynamic batch and sequence axes, opset 17
  fused          + onnxruntime transformer fusions (Attention, SkipLayerNorm, BiasGelu)
  int8-dynamic   dynamic INT8, per-channel weights, preset named by --isa
  int8-static    QDQ INT8 calibrated on corpus text (--calibration, --calibration-method)
  fp16           CUDA target (--device cuda; cannot be validated on a CPU-only machine)
  openvino       the fp32 graph in OpenVINO's format (model.xml + model.bin), computed in fp32
  openvino-bf16  the same model with bf16 matrix products (CPUs with AVX512-BF16 or AMX)
  openvino-int8  that model quantized to 8 bits by NNCF, calibrated on corpus text (--calibration)

The OpenVINO variants run on the CPU (studentpack[openvino], part of studentpack[cpu]); where
OpenVINO is installed the default CPU set includes them (openvino-bf16 only on a bf16 CPU).

Graph outputs: token_embeddings (B, T, H) and sentence_embedding (B, H; mean-pooled, L2-normalised),
or logits (B, C) for a classifier. Every variant is gated before it is handed over: fp32 and fused
on parity with PyTorch (max abs difference on real tokens of padded mixed-length batches), int8
and fp16 on accuracy against fp32 (sentence cosine mean/worst, or label agreement; optionally a
task metric). A variant that fails lands in <out>/rejected/<variant>/ with its figures, and the
command exits 1. Each <out>/<variant>/ holds model.onnx (or model.xml + model.bin), the tokenizer,
config.json and export.json.

Speed trial: when two or more variants are accepted, each is timed here (--threads), interleaved
with the others over rounds, at batch 1 and 32 of 128-token rows and on one text at a time
(--speed-shapes picks among 1, 32 and text); its export.json records its medians, the fastest
variant for each shape and how many times slower it is (`speed`). `studentpack pipeline` serves,
per model, the variant fastest on one text at a time. --no-speed-trial skips it.

examples:
  studentpack export runs/mha-l3/student --onnx --out runs/mha-l3/onnx
  studentpack export runs/mha-l3/student --onnx --variants fp32,int8-dynamic --isa avx512_vnni
  studentpack export runs/mha-l3/student --onnx --variants int8-dynamic,openvino-int8 --threads 2
  studentpack export runs/mha-l3/student --onnx --variants int8-static \\
      --calibration ../shared/data/wikitext-2/valid.txt --calibration-method Percentile
  studentpack export runs/mha-l3/student --onnx --eval-task stsb --eval-data ../shared/data/stsb/dev.tsv
  studentpack export runs/mha-l3/student --onnx --variants fp16 --device cuda
  studentpack export runs/mha-l3/student --onnx --triton runs/triton-repo
  studentpack export default --onnx --out runs/teacher/onnx        # the packaged all-MiniLM-L6-v2
"""

# flag -> config key (ExportOptions); flags left unset do not override --config
_FLAG_KEYS: dict[str, str] = {
    "out": "out",
    "variants": "variants",
    "isa": "isa",
    "device": "device",
    "per_channel": "per_channel",
    "int8_source": "int8_source",
    "keep_fp32": "keep_fp32",
    "calibration": "calibration",
    "calibration_method": "calibration_method",
    "calibration_texts": "calibration_texts",
    "sample": "sample",
    "sample_texts": "sample_texts",
    "max_length": "max_length",
    "max_abs": "gates.max_abs",
    "min_mean_cosine": "gates.min_mean_cosine",
    "min_worst_cosine": "gates.min_worst_cosine",
    "min_label_agreement": "gates.min_label_agreement",
    "max_metric_delta": "gates.max_metric_delta",
    "max_relative_error": "gates.max_relative_error",
    "eval_task": "eval_task",
    "eval_data": "eval_data",
    "eval_limit": "eval_limit",
    "triton": "triton",
    "triton_max_batch": "triton_max_batch",
    "triton_max_wait_ms": "triton_max_wait_ms",
    "triton_instances": "triton_instances",
    "triton_threads": "triton_threads",
    "triton_env": "triton_env",
    "threads": "threads",
    "speed_trial": "speed_trial",
    "speed_shapes": "speed_shapes",
    "overwrite": "overwrite",
    "allow_pickle": "allow_pickle",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument(
        "model", nargs="?", default=s, help="model directory (HF encoder or classifier), or 'default' for the teacher"
    )
    parser.add_argument("--onnx", action="store_true", help="export to ONNX (the one format so far; required)")
    parser.add_argument(
        "--out", default=s, metavar="DIR", help="output directory (default: <model>/../onnx, or ./onnx-<name>)"
    )
    parser.add_argument(
        "--variants",
        default=s,
        metavar="LIST",
        help="comma list of fp32, fused, int8-dynamic, int8-static, fp16, openvino, openvino-bf16, openvino-int8 "
        "(default on cpu: fp32,fused,int8-dynamic and the OpenVINO ones where installed; on cuda: fp32,fused,fp16)",
    )
    parser.add_argument("--device", default=s, help="cpu (default), cuda or cuda:N: the target the gates run on")
    parser.add_argument("--overwrite", action="store_true", default=s, help="replace an existing --out / --triton")
    parser.add_argument("--allow-pickle", action="store_true", default=s, help="allow pytorch_model.bin weights")
    parser.add_argument(
        "--threads", type=int, default=s, help="runtime threads for the gates and the speed trial (default: all)"
    )
    parser.add_argument(
        "--no-speed-trial",
        dest="speed_trial",
        action="store_false",
        default=s,
        help="do not time the accepted variants (see above)",
    )
    parser.add_argument(
        "--speed-shapes",
        type=lambda text: tuple(x.strip() for x in text.split(",") if x.strip()),
        default=s,
        metavar="SHAPES",
        help="what the speed trial times: comma list of 1, 32 (batches of 128-token rows) and text (one text at "
        "a time) (default 1,32,text)",
    )
    parser.add_argument("--config", metavar="FILE", help="options from a YAML/TOML/JSON file (keys as below)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one option")

    q = parser.add_argument_group("int8")
    q.add_argument(
        "--isa",
        default=s,
        help="INT8 preset: auto (default: from CPU flags), avx512_vnni, avx2 (7-bit weights) or arm64",
    )
    q.add_argument(
        "--per-tensor",
        dest="per_channel",
        action="store_false",
        default=s,
        help="one weight scale per tensor instead of per output channel (less accurate)",
    )
    q.add_argument(
        "--int8-source",
        choices=["fp32", "fused"],
        default=s,
        help="graph int8-dynamic quantizes: fp32 (default; faster at large batches here) or fused",
    )
    q.add_argument(
        "--keep-fp32",
        action="append",
        default=s,
        metavar="NODE",
        help="ONNX node name or shell pattern to leave in fp32 (repeatable, or comma list)",
    )
    q.add_argument("--calibration", default=s, metavar="FILE", help="int8-static calibration text (default: embedded)")
    q.add_argument("--calibration-method", default=s, help="MinMax (default), Entropy or Percentile")
    q.add_argument("--calibration-texts", type=int, default=s, help="calibration texts used (default 128)")

    g = parser.add_argument_group("gates")
    g.add_argument("--max-abs", type=float, default=s, help="fp32/fused parity: max abs difference (default 1e-4)")
    g.add_argument("--min-mean-cosine", type=float, default=s, help="int8/fp16: mean sentence cosine (default 0.99)")
    g.add_argument("--min-worst-cosine", type=float, default=s, help="int8/fp16: worst sentence cosine (default 0.95)")
    g.add_argument("--min-label-agreement", type=float, default=s, help="classifiers: argmax agreement (default 0.99)")
    g.add_argument(
        "--sample", default=s, metavar="FILE", help="held-out text for the accuracy gate (default: embedded)"
    )
    g.add_argument("--sample-texts", type=int, default=s, help="texts in the accuracy sample (default 256)")
    g.add_argument("--max-length", type=int, default=s, help="tokens per text in sample/calibration (default 128)")
    g.add_argument("--eval-task", default=s, help="also gate on a task metric: stsb (Spearman x100)")
    g.add_argument("--eval-data", default=s, metavar="FILE", help="labelled data for --eval-task (e.g. stsb/dev.tsv)")
    g.add_argument("--eval-limit", type=int, default=s, help="score only the first N examples of --eval-data")
    g.add_argument("--max-metric-delta", type=float, default=s, help="allowed task-metric drop in points (default 1)")
    g.add_argument(
        "--max-relative-error",
        type=float,
        default=s,
        help="regression heads: mean output error as a fraction of the outputs' std (default 0.05)",
    )

    t = parser.add_argument_group("triton")
    t.add_argument("--triton", default=s, metavar="DIR", help="also write a Triton model repository here")
    t.add_argument("--triton-max-batch", type=int, default=s, help="max_batch_size in config.pbtxt (default 32)")
    t.add_argument("--triton-max-wait-ms", type=float, default=s, help="dynamic batching queue delay (default 5)")
    t.add_argument("--triton-instances", type=int, default=s, help="instances of each text model (default 1)")
    t.add_argument("--triton-threads", type=int, default=s, help="onnxruntime threads per instance (default: all)")
    t.add_argument(
        "--triton-env",
        default=s,
        metavar="PATH",
        help="EXECUTION_ENV_PATH for the Python backend: an environment with numpy<2, onnxruntime, tokenizers",
    )


def _mapping(args: argparse.Namespace) -> dict[str, Any]:
    from studentpack.config import apply_sets, load_file

    data: dict[str, Any] = load_file(args.config) if args.config else {}
    for flag, key in _FLAG_KEYS.items():
        if flag not in args:
            continue
        value = getattr(args, flag)
        if flag == "variants":
            value = [v for v in value.split(",") if v.strip()]
        if flag == "keep_fp32":
            value = [p.strip() for item in value for p in item.split(",") if p.strip()]
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    if "model" in args:
        data["model"] = args.model
    data = apply_sets(data, args.set)
    data.setdefault("out", _default_out(data.get("model")))
    return data


def _default_out(model: str | None) -> str:
    if model:
        path = Path(model).expanduser()
        if path.is_dir() and path.name:
            return str(path.resolve().parent / "onnx")
    return f"onnx-{(model or 'default').replace('/', '_')}"


def run(args: argparse.Namespace) -> int:
    from studentpack.config import build
    from studentpack.ground.errors import UserError

    if not args.onnx:
        raise UserError("choose an export format: --onnx (the only one so far)")
    data = _mapping(args)
    if not data.get("model"):
        raise UserError("give a MODEL directory (or 'default' for the packaged teacher)")
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants

    options = build(ExportOptions, data)
    results = export_variants(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    for result in results:
        status = "ok      " if result.accepted else "REJECTED"
        size = result.record.get("file_bytes") or 0
        print(f"{status} {result.variant:<13} {size / 2**20:7.1f} MB  {result.path}")
    rejected = [r.variant for r in results if not r.accepted]
    if rejected:
        print(f"studentpack export: {len(rejected)} variant(s) failed a gate: {', '.join(rejected)}", file=sys.stderr)
        return 1
    return 0
