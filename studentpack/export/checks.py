"""Whether the requested variants can be built and gated on this machine, before any work."""

from __future__ import annotations

from studentpack.export import presets
from studentpack.ground.cuda import require_ort_cuda
from studentpack.ground.errors import UserError


def check_device(kind: str, device: str, variants: tuple[str, ...]) -> None:
    """Refuse a variant the device cannot validate (or runs slower than fp32), and a CUDA run without CUDA."""
    import onnxruntime as ort

    openvino = [v for v in variants if v in presets.OPENVINO_VARIANTS]
    if openvino and kind == "cuda":
        raise UserError(
            f"{openvino[0]} runs on the CPU only (OpenVINO has no CUDA device); export it with --device cpu"
        )
    if openvino:
        check_openvino(openvino)

    providers = ort.get_available_providers()
    if kind == "cpu" and "fp16" in variants:
        raise UserError(
            "fp16 is the CUDA target and is validated only on CUDA; this run targets the CPU "
            f"(onnxruntime providers here: {', '.join(providers)}), so fp16 cannot be validated here: "
            "run with --device cuda on a machine with onnxruntime-gpu"
        )
    if kind == "cuda":
        int8 = [v for v in variants if v in presets.INT8_VARIANTS]
        if int8:
            raise UserError(
                f"{int8[0]} is refused for --device cuda: ONNX Runtime's CUDA provider has no fast INT8 "
                "GEMM path and runs it slower than fp32; use fp16 on GPU, int8 on CPU"
            )
        require_ort_cuda(device, providers)


def check_openvino(variants: list[str]) -> None:
    """The OpenVINO variants need the optional openvino package (and nncf for openvino-int8)."""
    import importlib.util

    missing = [m for m in ("openvino", "nncf") if importlib.util.find_spec(m) is None]
    if "openvino-int8" not in variants and "nncf" in missing:
        missing.remove("nncf")
    if missing:
        raise UserError(
            f"the {variants[0]} variant needs {' and '.join(missing)}, which this install lacks: "
            "pip install 'studentpack[openvino]'"
        )
