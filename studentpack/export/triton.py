"""A Triton Inference Server model repository for exported variants (ONNX Runtime backend).

    <repo>/<name>/config.pbtxt     inputs, outputs, max batch size, dynamic batching
    <repo>/<name>/1/model.onnx

Dims in config.pbtxt leave out the batch axis (Triton adds it when max_batch_size > 0); -1 marks
the dynamic sequence axis. Triton batches only requests of equal shape, so clients should pad to
a fixed length (or few lengths) to benefit from dynamic batching.

`load_model_config_proto` reads the ModelConfig protobuf that the `tritonclient` package ships
(tritonclient/grpc/model_config_pb2.py). A `tritonclient[http]` install lacks grpcio, and
`tritonclient.grpc/__init__` refuses to import without it, so the generated module is loaded from
its file; it needs only `protobuf`.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx

from studentpack.atomic import atomic_dir
from studentpack.errors import UserError

_TYPES: dict[int, str] = {
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's TYPE_* name
    dims: tuple[int, ...]  # without the batch axis; -1 for dynamic


def graph_io(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an ONNX graph as Triton tensors (batch axis dropped)."""
    initializers = {init.name for init in model.graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        if tensor.elem_type not in _TYPES:
            raise UserError(f"tensor {value.name} has a type Triton's config cannot name here ({tensor.elem_type})")
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        return TensorSpec(value.name, _TYPES[tensor.elem_type], dims[1:])

    inputs = [spec(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in model.graph.output]


def model_name(variant: str, prefix: str = "") -> str:
    """Triton model names: letters, digits, '_' and '-'."""
    raw = f"{prefix}_{variant}" if prefix else variant
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)


def config_pbtxt(
    name: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    max_batch_size: int = 32,
    gpu: bool = False,
    queue_delay_us: int = 1000,
) -> str:
    """config.pbtxt text (protobuf text format of inference.ModelConfig)."""

    def block(kind: str, specs: list[TensorSpec]) -> str:
        def one(s: TensorSpec) -> str:
            dims = ", ".join(map(str, s.dims))
            return f'  {{\n    name: "{s.name}"\n    data_type: {s.data_type}\n    dims: [ {dims} ]\n  }}'

        items = ",\n".join(one(s) for s in specs)
        return f"{kind} [\n{items}\n]"

    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "onnxruntime"',
            f"max_batch_size: {max_batch_size}",
            block("input", inputs),
            block("output", outputs),
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}",
            f"instance_group [\n  {{\n    count: 1\n    kind: {'KIND_GPU' if gpu else 'KIND_CPU'}\n  }}\n]",
            "",
        ]
    )


def write_repository(
    repo: Path,
    variants: dict[str, Path],
    prefix: str = "",
    max_batch_size: int = 32,
    gpu_variants: tuple[str, ...] = ("fp16",),
    overwrite: bool = False,
) -> dict[str, str]:
    """Write a model repository for `variants` (name -> variant dir); returns variant -> Triton model name."""
    if max_batch_size < 1:
        raise UserError(f"--triton-max-batch must be >= 1, got {max_batch_size}")
    names = {}
    with atomic_dir(repo, overwrite=overwrite) as tmp:
        for variant, directory in variants.items():
            name = model_name(variant, prefix)
            model = onnx.load(str(directory / "model.onnx"), load_external_data=False)
            inputs, outputs = graph_io(model)
            (tmp / name / "1").mkdir(parents=True)
            shutil.copy2(directory / "model.onnx", tmp / name / "1" / "model.onnx")
            text = config_pbtxt(name, inputs, outputs, max_batch_size, gpu=variant in gpu_variants)
            (tmp / name / "config.pbtxt").write_text(text, encoding="utf-8")
            names[variant] = name
    return names


@functools.cache
def load_model_config_proto() -> ModuleType:
    """tritonclient's generated model_config_pb2 module (Triton's ModelConfig definition)."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("tritonclient is not installed (pip install 'tritonclient[http]')")
    file = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    if not file.is_file():
        raise UserError(f"this tritonclient does not ship model_config_pb2.py ({file})")
    module_spec = importlib.util.spec_from_file_location("studentpack_triton_model_config_pb2", file)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text as Triton's ModelConfig (raises on unknown fields or bad values)."""
    from google.protobuf import text_format

    proto = load_model_config_proto()
    return text_format.Parse(text, proto.ModelConfig())
