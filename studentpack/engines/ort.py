"""ONNX Runtime for exported variants (model.onnx): providers, threads, CUDA checks.

`OrtSession` is one `onnxruntime.InferenceSession` over a variant's `model.onnx` plus its tokenizer;
tokenisation and the encode protocol over it are shared with the other graph engines
(`studentpack.engines.graph`). Serving and benchmarks use the session directly::

    session = OrtSession.open("runs/x/onnx/int8-dynamic", device="cpu", threads=2)
    feeds = session.tokenize(["a sentence", "another one"])   # {"input_ids": (B, T) int64, ...}
    feeds = session.tokenize(["a premise"], ["a hypothesis"])  # sentence pairs (cross-encoders)
    out = session.run(feeds)                                  # {"token_embeddings": (B, T, H),
                                                              #  "sentence_embedding": (B, H)}

A variant directory holds `model.onnx`, the tokenizer files and `export.json` (written by
`studentpack export --onnx`); its `kind` ("embedding" or "classifier"), `labels`, `outputs` and
`max_length` tell the session what the graph computes.

CUDA is never a silent fallback: asking for `cuda` raises `GpuUnavailableError` when this
onnxruntime has no CUDAExecutionProvider, or when the session came up without it (onnxruntime-gpu
drops to CPU with only a log line when the CUDA libraries fail to load).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.engines.base import DEFAULT_MAX_LENGTH
from studentpack.engines.graph import GraphEncoder, GraphSession
from studentpack.ground.cuda import CUDA_PROVIDER, require_ort_cuda
from studentpack.ground.errors import UserError

CPU_PROVIDER = "CPUExecutionProvider"
MODEL_FILE = "model.onnx"
# runs of more tokens (batch x length) than this hand their memory back when release_memory is set
RELEASE_ABOVE_TOKENS = 512
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def parse_device(device: str) -> tuple[str, int]:
    """`cpu`, `cuda` or `cuda:N` -> ("cpu" | "cuda", device id)."""
    if device == "cpu":
        return "cpu", 0
    if device == "cuda" or device.startswith("cuda:"):
        index = device.partition(":")[2] or "0"
        if not index.isdigit():
            raise UserError(f"unknown device {device!r} (use cpu, cuda or cuda:N)")
        return "cuda", int(index)
    raise UserError(f"unknown device {device!r} (use cpu, cuda or cuda:N)")


def check_providers(device: str, providers: Sequence[str], where: str = "this onnxruntime") -> None:
    """Raise GpuUnavailableError when CUDA was asked for and `providers` lacks CUDAExecutionProvider."""
    parse_device(device)  # an unknown device name is a user error before any provider question
    require_ort_cuda(device, providers, where)


def session_providers(device: str) -> list[Any]:
    kind, index = parse_device(device)
    if kind == "cuda":
        _preload_cuda_libraries()
        return [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]
    return [CPU_PROVIDER]


@functools.cache
def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu >= 1.21 loads CUDA/cuDNN from torch's or the nvidia-* wheels, so no system CUDA
    install is needed (a container with PyPI's torch has them); older versions rely on the loader path."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if callable(preload):
        preload()


class OrtSession(GraphSession):
    """An InferenceSession with its tokenizer: texts -> feeds -> named outputs."""

    MODEL_FILE = MODEL_FILE
    PLATFORM = "onnxruntime_onnx"

    def __init__(
        self,
        model_path: str | Path,
        tokenizer: Any,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        warmup: bool = True,
        info: dict[str, Any] | None = None,
        spinning: bool = True,
        warmup_shapes: Sequence[tuple[int, int]] = (),
        release_memory: bool = False,
    ) -> None:
        """`threads`: intra-op threads (None: onnxruntime's default, one per core).

        `release_memory=True` hands the memory arena's free chunks back after every run larger than
        RELEASE_ABOVE_TOKENS, so a server's resident memory returns to its resting size after a large
        batch instead of holding that batch's peak for the life of the process (ground/memory.py has the
        allocator half of this). Smaller runs reuse what the arena holds: releasing after every run cost
        up to a fifth of the throughput of one-text calls (BENCHMARKS.md, *The lean serving install*).

        `spinning=False` stops idle intra-op threads from busy-waiting for the next run: slower to
        start each run by a little, but they no longer take cores from other threads between runs
        (a server's event loop, a co-located client, other sessions on a small machine).
        """
        import onnxruntime as ort

        self.path = Path(model_path)
        if not self.path.is_file():
            raise UserError(f"ONNX model not found: {self.path}")
        self.device = device
        check_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 0:
                raise UserError(f"threads must be >= 0, got {threads}")
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        check_external_data(self.path)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=session_providers(device))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UserError(f"onnxruntime cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        self.providers = list(self.session.get_providers())
        check_providers(device, self.providers, where=f"the session for {self.path}")
        self._releasing: Any = None  # RunOptions that shrink the arena after the run
        if release_memory:
            kind, index = parse_device(device)
            self._releasing = ort.RunOptions()
            arena = "cpu:0" if kind == "cpu" else f"cpu:0;gpu:{index}"
            self._releasing.add_run_config_entry("memory.enable_memory_arena_shrinkage", arena)
        super().__init__(tokenizer, max_length, info)
        self.input_types = {i.name: _INT_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        if warmup:
            self.warmup(shapes=((2, 8), *warmup_shapes))

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs else self.output_names
        self.check_outputs(names)
        large = self._releasing is not None and feeds["input_ids"].size > RELEASE_ABOVE_TOKENS
        values = self.session.run(
            names, {k: v for k, v in feeds.items() if k in self.input_types}, self._releasing if large else None
        )
        return dict(zip(names, values, strict=True))

    def output_width(self, name: str) -> int | None:
        width = self.session.get_outputs()[self.output_names.index(name)].shape[-1]
        return width if isinstance(width, int) else None


# the encoder over any graph session; the name stays for callers that know it as the ONNX one
OrtEncoder = GraphEncoder


def check_external_data(model_path: Path) -> None:
    """Refuse a graph whose external tensor data lies outside its own directory (a hostile file could
    point at ../../etc/shadow). Recent onnxruntime refuses too; this does not depend on its version."""
    from studentpack.engines.onnx_wire import WireError, external_locations

    try:
        locations = external_locations(model_path)
    except (OSError, WireError) as exc:
        raise UserError(f"cannot read {model_path}: {str(exc).splitlines()[0]}") from exc
    home = model_path.parent.resolve()
    for name, location in locations:
        target = (home / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(home):
            raise UserError(
                f"{model_path}: tensor {name} keeps its data at {location!r}, outside the model's "
                "directory; refusing to read it"
            )
