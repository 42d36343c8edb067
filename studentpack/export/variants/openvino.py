"""openvino, openvino-bf16 and openvino-int8: the fp32 graph in OpenVINO's own format (model.xml +
model.bin); the same model run with bf16 matrix products; and that model quantized to 8 bits by NNCF
post-training quantization calibrated on text.

Both are read with `openvino.Core.read_model` from our own fp32 ONNX export; `openvino.convert_model`
(the ovc tool) is not used because it sends usage telemetry by default. NNCF does too unless its CI
switch is set, so `make_int8` sets it before importing NNCF: studentpack sends nothing anywhere.

Why NNCF rather than OpenVINO running our int8-static (QDQ) graph: on the 2-core AVX512-VNNI machine,
teacher, sequence 128, 2 threads, one run (`benchmarks/bench_export.py` has the committed figures):
NNCF's model ran 167 ms at batch 32 against 257 ms for the QDQ graph (and ORT int8-dynamic's 236 ms),
6.3 ms against 8.6 ms at batch 1. The QDQ graph keeps the word embeddings and FFN down-projections
in fp32; NNCF's transformer preset quantizes every weight MatMul and keeps the sensitive operators
(softmax, LayerNorm, GELU) in float on its own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from studentpack.export.variants import BuildContext, VariantSpec

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
PRECISION = "f32"  # the CPU plugin computes non-quantized operators in fp32, as the graph was gated


def make_fp32(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    import openvino as ov

    model = ov.Core().read_model(str(ctx.work / "fp32" / "model.onnx"))
    ov.save_model(model, str(directory / MODEL_FILE), compress_to_fp16=False)  # full precision weights
    return {"openvino": {"version": ov.__version__, "inference_precision": PRECISION, "source_graph": "fp32"}}


def make_int8(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    import openvino as ov

    os.environ.setdefault("NNCF_CI", "1")  # NNCF's only switch for its telemetry: off
    try:
        import nncf
    except ImportError as exc:
        raise _missing_nncf() from exc

    feeds = ctx.calibration_feeds()
    model = ov.Core().read_model(str(ctx.work / "openvino" / MODEL_FILE))
    samples = sum(len(next(iter(f.values()))) for f in feeds)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(feeds),  # each item is one batch of feeds, already as the model takes them
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(feeds),
    )
    ov.save_model(quantized, str(directory / MODEL_FILE), compress_to_fp16=False)
    settings = {
        "method": "nncf.quantize (post-training, ModelType.TRANSFORMER, preset performance)",
        "nncf_version": nncf.__version__,
        "calibration_batches": len(feeds),
        "calibration_texts": samples,
    }
    return {
        "openvino": {"version": ov.__version__, "inference_precision": PRECISION, "source_graph": "openvino"},
        "quantization": settings,
        "calibration": ctx.p.corpora.get("calibration"),
    }


def make_bf16(ctx: BuildContext, directory: Path) -> dict[str, Any]:
    """The openvino model unchanged, run with the CPU plugin's bf16 precision hint: weights stay fp32 on
    disk, matrix products run in bf16 where the CPU has it (AVX512-BF16, AMX), softmax and norms in fp32."""
    import openvino as ov

    from studentpack.ground.isa import BF16_FLAGS
    from studentpack.ground.provenance import cpu_flags

    for name in (MODEL_FILE, WEIGHTS_FILE):
        shutil.copy2(ctx.work / "openvino" / name, directory / name)
    native = sorted(set(BF16_FLAGS) & set(cpu_flags()))
    if not native:
        ctx.log("openvino-bf16: warning: this CPU has no bf16 instructions; OpenVINO will compute in fp32")
    return {
        "openvino": {
            "version": ov.__version__,
            "inference_precision": "bf16",
            "source_graph": "openvino",
            "bf16_cpu_flags": native,
        }
    }


def _missing_nncf() -> Exception:
    from studentpack.ground.errors import UserError

    return UserError("the openvino-int8 variant needs NNCF: pip install 'studentpack[openvino]'")


SPEC = VariantSpec("openvino", make_fp32, lambda opts: ("fp32",))
BF16_SPEC = VariantSpec("openvino-bf16", make_bf16, lambda opts: ("openvino",))
INT8_SPEC = VariantSpec("openvino-int8", make_int8, lambda opts: ("openvino",))
