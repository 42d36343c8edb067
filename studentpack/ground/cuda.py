"""The one check of whether CUDA, when asked for, is there: in torch and in ONNX Runtime.

A GPU asked for and missing is an error before any work, never a quiet run on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from studentpack.ground.errors import GpuUnavailableError

CUDA_PROVIDER = "CUDAExecutionProvider"


def wants_cuda(device: str) -> bool:
    return device.startswith("cuda")


def require_torch_cuda(device: str, flag: str = "device") -> None:
    """Raise when `device` names CUDA and torch sees none (a CPU build, no driver, no GPU)."""
    if not wants_cuda(device):
        return
    import torch

    if not torch.cuda.is_available():
        raise GpuUnavailableError(f"{flag} {device} was asked for but torch sees no CUDA device")


def require_ort_cuda(device: str, providers: Sequence[str] | None = None, where: str = "this onnxruntime") -> None:
    """Raise when `device` names CUDA and `providers` (default: onnxruntime's) lack the CUDA provider."""
    if not wants_cuda(device):
        return
    if providers is None:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    if CUDA_PROVIDER not in providers:
        raise GpuUnavailableError(
            f"device {device} was asked for but {where} has no {CUDA_PROVIDER} (providers: {', '.join(providers)}); "
            "install studentpack[gpu] (onnxruntime-gpu, not onnxruntime) on a machine with CUDA"
        )
