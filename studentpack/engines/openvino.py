"""OpenVINO for exported variants (model.xml + model.bin, OpenVINO's own format): the CPU plugin,
its threads, performance hint and inference precision.

    session = OvSession.open("runs/x/onnx/openvino-int8", threads=2)
    out = session.run(session.tokenize(["a sentence"]))      # {"sentence_embedding": (1, H), ...}

The inference precision is part of the variant: export.json's `openvino.inference_precision` ("f32"
unless the variant says otherwise). Left to itself the CPU plugin computes in bf16 on CPUs that have
it (AVX512-BF16, AMX), which is faster and no longer the graph that passed its parity gate.

OpenVINO runs Intel CPUs and GPUs, never CUDA: asking for `cuda` is an error, not a quiet run on the
CPU. The runtime here is `openvino.Core` only; nothing in this module sends telemetry (OpenVINO's
telemetry lives in its model-conversion tools, which studentpack does not call).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from studentpack.engines.base import DEFAULT_MAX_LENGTH
from studentpack.engines.graph import GraphSession
from studentpack.ground.errors import GpuUnavailableError, UserError

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
PRECISIONS = ("f32", "bf16")
Hint = Literal["latency", "throughput"]


def check_device(device: str) -> None:
    if device == "cpu":
        return
    if device.startswith("cuda"):
        raise GpuUnavailableError(
            f"device {device} was asked for, but an OpenVINO variant runs on the CPU only here (OpenVINO has no "
            "CUDA device); on an NVIDIA GPU serve an ONNX variant (fp16) with studentpack[gpu]"
        )
    raise UserError(f"unknown device {device!r} for an OpenVINO variant (use cpu)")


def compile_options(threads: int | None, hint: Hint, precision: str) -> dict[str, Any]:
    """The CPU plugin's settings. LATENCY puts every thread on one request: our callers run one batch at
    a time (the server's batcher included), so THROUGHPUT's several streams would leave threads idle."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown OpenVINO inference precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if hint not in ("latency", "throughput"):
        raise UserError(f"unknown OpenVINO performance hint {hint!r} (latency or throughput)")
    options: dict[str, Any] = {"PERFORMANCE_HINT": hint.upper(), "INFERENCE_PRECISION_HINT": precision}
    if threads:
        if threads < 0:
            raise UserError(f"threads must be >= 0, got {threads}")
        options["INFERENCE_NUM_THREADS"] = threads
    return options


class OvSession(GraphSession):
    """A compiled OpenVINO model with its tokenizer: texts -> feeds -> named outputs."""

    MODEL_FILE = MODEL_FILE
    PLATFORM = "openvino"

    def __init__(
        self,
        model_path: str | Path,
        tokenizer: Any,
        device: str = "cpu",
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        warmup: bool = True,
        info: dict[str, Any] | None = None,
        hint: Hint = "latency",
        warmup_shapes: Sequence[tuple[int, int]] = (),
        spinning: bool = True,  # an ONNX Runtime setting: OpenVINO's threads do not busy-wait between runs
        release_memory: bool = False,  # an ONNX Runtime setting: OpenVINO's CPU plugin keeps no growing arena
    ) -> None:
        import openvino as ov

        self.path = Path(model_path)
        check_device(device)
        if not self.path.is_file():
            raise UserError(f"OpenVINO model not found: {self.path}")
        if not self.path.with_suffix(".bin").is_file():
            raise UserError(f"{self.path} has no weights file {self.path.with_suffix('.bin').name} beside it")
        self.device = device
        super().__init__(tokenizer, max_length, info)
        self.precision = str((self.info.get("openvino") or {}).get("inference_precision") or "f32")
        self.options = compile_options(threads, hint, self.precision)
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
            self.compiled = core.compile_model(model, "CPU", self.options)
        except RuntimeError as exc:  # OpenVINO reports every load failure as RuntimeError
            raise UserError(f"OpenVINO cannot load {self.path}: {_first_line(exc)}") from exc
        self.providers = ["openvino:CPU"]
        self.input_types = {
            port.get_any_name(): np.dtype(port.get_element_type().to_dtype()).type for port in self.compiled.inputs
        }
        self._outputs = {name: port for port in self.compiled.outputs for name in port.get_names()}
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: one run at a time
        if warmup:
            self.warmup(shapes=((2, 8), *warmup_shapes))

    @staticmethod
    def check_device(device: str) -> None:
        check_device(device)

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs else self.output_names
        self.check_outputs(names)
        inputs = {k: v for k, v in feeds.items() if k in self.input_types}
        with self._lock:
            # share_outputs=False (the default, said aloud): the request reuses its output buffers on the
            # next run, so what we return must be copies
            result = self._request.infer(inputs, share_outputs=False)
            return {name: np.asarray(result[self._outputs[name]], dtype=np.float32) for name in names}

    def output_width(self, name: str) -> int | None:
        shape = self._outputs[name].get_partial_shape()
        last = shape[shape.rank.get_length() - 1]
        return int(last.get_length()) if last.is_static else None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # OpenVINO prefixes its messages with "Exception from src/...cpp:NN:"; the cause is the last line
    return lines[-1] if lines else type(exc).__name__
