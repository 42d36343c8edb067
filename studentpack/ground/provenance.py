"""Facts recorded beside every artifact and figure: content hashes, package versions, the machine."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path

# files that define what a model directory computes; other files (READMEs, caches) do not change it
_MODEL_FILE_SUFFIXES = (
    ".json",
    ".safetensors",
    ".bin",
    ".txt",
    ".model",
    ".onnx",
    ".data",
    ".xml",
)  # .xml: OpenVINO graphs

_PACKAGES = (
    "studentpack",
    "torch",
    "transformers",
    "accelerate",
    "tokenizers",
    "safetensors",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
)


def hash_directory(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 over the relative names and bytes of the model-defining files of a directory."""
    root = Path(path)
    digest = hashlib.sha256()
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES and not _hidden(p, root)
    )
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def hash_texts(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_flags() -> list[str]:
    """The CPU feature flags (Linux /proc/cpuinfo); empty where unavailable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    return []


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
    }


def gpus() -> list[str]:
    """GPU names from nvidia-smi (empty where there is none), without importing torch."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def machine_facts() -> dict[str, object]:
    """machine() plus the CPU flags that decide INT8 speed, the CPUs this process may use, and GPUs."""
    from studentpack.ground.isa import relevant_flags

    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {**machine(), "cpu_flags": relevant_flags(cpu_flags()), "usable_cpus": usable, "gpus": gpus()}
