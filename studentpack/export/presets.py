"""Variant names: which exports exist, which run by default on each device, and how each is judged.

The INT8 presets named after the CPUs that run them live in `studentpack.ground.isa`.
"""

from __future__ import annotations

from collections.abc import Sequence

from studentpack.ground.errors import UserError
from studentpack.ground.isa import BF16_FLAGS

VARIANTS = ("fp32", "fused", "int8-dynamic", "int8-static", "fp16", "openvino", "openvino-bf16", "openvino-int8")
DEFAULT_CPU_VARIANTS = ("fp32", "fused", "int8-dynamic")
DEFAULT_CUDA_VARIANTS = ("fp32", "fused", "fp16")
INT8_VARIANTS = ("int8-dynamic", "int8-static")  # ONNX Runtime INT8: quantized for this CPU's ISA preset
OPENVINO_VARIANTS = ("openvino", "openvino-bf16", "openvino-int8")  # OpenVINO's own format (model.xml), CPU only
CALIBRATED_VARIANTS = ("int8-static", "openvino-int8")  # activation ranges measured on calibration text
PARITY_VARIANTS = ("fp32", "fused", "openvino")  # judged by max-abs parity against PyTorch
ACCURACY_VARIANTS = ("int8-dynamic", "int8-static", "fp16", "openvino-bf16", "openvino-int8")  # against fp32
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")


def parse_variants(spec: str | Sequence[str] | None, device: str) -> tuple[str, ...]:
    """`fp32,int8-dynamic` -> a validated tuple in canonical order; None -> the device's default set."""
    if spec is None or spec == "" or spec == ():
        if device.startswith("cuda"):
            return DEFAULT_CUDA_VARIANTS
        return DEFAULT_CPU_VARIANTS + default_openvino_variants()
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [s.strip() for s in spec]
    unknown = [s for s in items if s not in VARIANTS]
    if unknown or not items:
        raise UserError(f"unknown variant {unknown[0] if unknown else '(empty)'!r}; choose from {', '.join(VARIANTS)}")
    return tuple(v for v in VARIANTS if v in items)


def openvino_installed() -> bool:
    """OpenVINO and NNCF importable (studentpack[openvino]); checked without importing them."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def default_openvino_variants(flags: Sequence[str] | None = None) -> tuple[str, ...]:
    """openvino and openvino-int8 where OpenVINO is installed, and openvino-bf16 where the CPU computes bf16."""
    if not openvino_installed():
        return ()
    if flags is None:
        from studentpack.ground.provenance import cpu_flags

        flags = cpu_flags()
    bf16 = any(flag in flags for flag in BF16_FLAGS)
    return tuple(v for v in OPENVINO_VARIANTS if bf16 or v != "openvino-bf16")
