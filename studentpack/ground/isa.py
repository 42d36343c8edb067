"""CPU instruction-set facts: the class named beside every speed figure, and the INT8 presets named after
the hardware that runs them.

Why the presets differ (ONNX Runtime's x86 INT8 GEMM kernels):
- `avx512_vnni`: VPDPBUSD multiplies u8 x s8 and accumulates in int32 with no intermediate
  saturation, so full 8-bit weights are safe. Also chosen for AVX-VNNI and AMX CPUs.
- `avx2`: without VNNI the kernel uses VPMADDUBSW, whose int16 pair sums can saturate with
  full-range u8 x s8 products; 7-bit weights (`reduce_range`) avoid that at a small accuracy cost.
- `arm64`: NEON/SDOT kernels have no saturation issue; full 8-bit weights.
Weights are int8, per output channel by default (per-tensor INT8 measurably hurts sentence
embeddings: BENCHMARKS.md, export). Dynamic quantization's activations are always uint8 in ORT.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass

from studentpack.ground.errors import UserError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPUs on which OpenVINO's bf16 hint computes in bf16

# flags that decide the preset, recorded in export.json beside the choice
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
_RELEVANT_FLAGS = (*_VNNI_FLAGS, *BF16_FLAGS, "avx512f", "avx512bw", "avx2", "fma", "asimd", "asimddp", "i8mm")


@dataclass(frozen=True)
class IsaPreset:
    name: str
    reduce_range: bool  # 7-bit weights (avoids VPMADDUBSW saturation on AVX2 without VNNI)
    static_activation: str  # "uint8" or "int8": activation type for QDQ static quantization
    description: str


PRESETS: dict[str, IsaPreset] = {
    "avx512_vnni": IsaPreset("avx512_vnni", False, "uint8", "x86 with VNNI (AVX512-VNNI, AVX-VNNI or AMX)"),
    "avx2": IsaPreset("avx2", True, "uint8", "x86 with AVX2 and no VNNI: 7-bit weights against saturation"),
    "arm64": IsaPreset("arm64", False, "int8", "ARM64 (NEON dot product)"),
}


def relevant_flags(flags: Sequence[str]) -> list[str]:
    return sorted(f for f in flags if f in _RELEVANT_FLAGS)


def detect_isa(flags: Sequence[str], machine: str | None = None) -> str:
    """The preset for this CPU from its feature flags (`provenance.cpu_flags()`) and architecture."""
    arch = (machine or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return "arm64"
    if any(f in flags for f in _VNNI_FLAGS):
        return "avx512_vnni"
    return "avx2"  # AVX2 (or older x86): reduced range is the safe choice


def cpu_class(flags: Sequence[str], machine: str | None = None) -> str:
    """The CPU's vector class, as named beside every speed figure: which variant is fastest depends on it
    (on AVX2 without VNNI, OpenVINO's INT8 ran slower than PyTorch eager; with AVX-512 VNNI, 3.1x faster)."""
    arch = (machine or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return "ARM64" + (" + dot product" if "asimddp" in flags else "") + (" + i8mm" if "i8mm" in flags else "")
    if "amx_int8" in flags or "amx_bf16" in flags:
        return "AMX"
    base = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "x86 without AVX2"
    extras = [name for name, present in (("VNNI", any(f in flags for f in _VNNI_FLAGS)),
                                         ("BF16", "avx512_bf16" in flags)) if present]  # fmt: skip
    return " + ".join([base, *extras])


def preset_mismatch(preset: str, flags: Sequence[str], machine: str | None = None) -> str:
    """Why an INT8 graph quantized for `preset` would compute wrongly or slowly on this CPU ('' if it fits).

    A full-range (avx512_vnni) graph on an x86 CPU without VNNI runs through VPMADDUBSW, whose 16-bit
    intermediate sums saturate: outputs silently drift. ARM graphs on x86 (and the reverse) were tuned
    for the other instruction set.
    """
    here = detect_isa(flags, machine)
    if preset == "avx512_vnni" and here == "avx2":
        return "it was quantized for VNNI CPUs (full 8-bit weights) and this CPU has no VNNI: int8 sums can saturate"
    if preset in PRESETS and (preset == "arm64") != (here == "arm64"):
        return f"it was quantized for {PRESETS[preset].description} and this CPU is {PRESETS[here].description}"
    return ""


def resolve_isa(requested: str, flags: Sequence[str], machine: str | None = None) -> IsaPreset:
    if requested == "auto":
        return PRESETS[detect_isa(flags, machine)]
    if requested not in PRESETS:
        raise UserError(f"unknown ISA preset {requested!r}; choose auto or one of {', '.join(PRESETS)}")
    return PRESETS[requested]
