"""A Triton Inference Server model repository for exported ONNX variants.

For each variant two models, and a KServe manifest beside them:

    <repo>/<name>/config.pbtxt        text in: Python backend, input `text` (BYTES) -> `embedding` (FP32)
    <repo>/<name>/1/model.py          or `logits`, exactly as `studentpack serve` answers over OIP v2
    <repo>/<name>/1/{model.onnx, tokenizer.json, export.json}
    <repo>/<name>_ids/config.pbtxt    ids in: ONNX Runtime backend (for a Triton that has it)
    <repo>/<name>_ids/1/model.onnx
    <repo>/kserve.yaml                an InferenceService serving the repository (not verified here)

The text model tokenises inside Triton (`triton_python/model.py`), so one client works against both
servers. Its dynamic batching, instance count and threads come from the same settings as `studentpack
serve` (max batch, max wait). The Python backend's stub needs numpy < 2, onnxruntime and tokenizers: an
environment named by `env_path` (config parameter EXECUTION_ENV_PATH), or the stub's own Python.

Dims in config.pbtxt leave out the batch axis (Triton adds it when max_batch_size > 0); -1 marks
the dynamic sequence axis. The ids-in model batches only requests of equal shape, so its clients
should pad to a fixed length (or few lengths) to benefit from dynamic batching.

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

from studentpack.ground.atomic import atomic_dir
from studentpack.ground.errors import UserError
from studentpack.ground.protocol import MAX_LENGTH_PARAMETER, SOURCE_SHA_PARAMETER
from studentpack.ground.provenance import hash_directory

PER_TEXT_PARAMETER = "one_text_per_call"  # read by triton_python/model.py

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
    block = _tensor_block
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


@dataclass(frozen=True)
class TritonSettings:
    """The repository's serving settings; the defaults are `studentpack serve`'s."""

    max_batch_size: int = 32  # serve --max-batch
    max_wait_ms: float = 5.0  # serve --max-wait-ms: Triton's max_queue_delay_microseconds
    instances: int = 1  # model instances (each a stub process with its own session)
    threads: int = 0  # onnxruntime intra-op threads per instance (0: onnxruntime's default)
    max_length: int = 128  # serve --max-length, capped by the model's own limit
    env_path: str | None = None  # EXECUTION_ENV_PATH: an environment (or packed one) for the stub

    def check(self) -> None:
        for name in ("max_batch_size", "instances", "max_length"):
            if getattr(self, name) < 1:
                flag = {"max_batch_size": "max-batch"}.get(name, name.replace("_", "-"))
                raise UserError(f"--triton-{flag} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0 or self.max_wait_ms < 0:
            raise UserError("triton threads and max wait must be >= 0")


def _tensor_block(kind: str, specs: list[TensorSpec]) -> str:
    def one(s: TensorSpec) -> str:
        dims = ", ".join(map(str, s.dims))
        return f'  {{\n    name: "{s.name}"\n    data_type: {s.data_type}\n    dims: [ {dims} ]\n  }}'

    items = ",\n".join(one(s) for s in specs)
    return f"{kind} [\n{items}\n]"


def text_config_pbtxt(name: str, output: TensorSpec, settings: TritonSettings, parameters: dict[str, str]) -> str:
    """config.pbtxt of the Python-backend model: `text` (BYTES, one per row) in, `output` out."""
    params = dict(parameters)
    if settings.env_path:
        params["EXECUTION_ENV_PATH"] = settings.env_path
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {settings.max_batch_size}",
        _tensor_block("input", [TensorSpec("text", "TYPE_STRING", (1,))]),
        _tensor_block("output", [TensorSpec(output.name, "TYPE_FP32", output.dims[-1:])]),
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {round(settings.max_wait_ms * 1000)}\n}}",
        f"instance_group [\n  {{\n    count: {settings.instances}\n    kind: KIND_CPU\n  }}\n]",
    ]
    for key, value in params.items():
        lines.append(f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}')
    return "\n".join(lines) + "\n"


def kserve_manifest(name: str, storage_uri: str = "pvc://models/triton") -> str:
    """A minimal KServe InferenceService running Triton on the repository (written, not verified here)."""
    return f"""# KServe InferenceService for this Triton repository. Not verified here (no cluster): a starting point.
# Copy the repository to storage_uri; the Triton image must have the Python backend (NGC's has) and an
# environment with numpy<2, onnxruntime and tokenizers for the text models (EXECUTION_ENV_PATH).
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name.lower().replace("_", "-")}
spec:
  predictor:
    triton:
      storageUri: {storage_uri}
      runtimeVersion: 24.08-py3
      args: ["--strict-model-config=true", "--log-verbose=0"]
      resources:
        requests: {{cpu: "2", memory: 2Gi}}
        limits: {{cpu: "2", memory: 4Gi}}
"""


_MODEL_PY = Path(__file__).with_name("triton_python") / "model.py"


def write_repository(
    repo: Path,
    variants: dict[str, Path],
    prefix: str = "",
    max_batch_size: int = 32,
    gpu_variants: tuple[str, ...] = ("fp16",),
    overwrite: bool = False,
    settings: TritonSettings | None = None,
) -> dict[str, str]:
    """Write a model repository for `variants` (name -> variant dir); returns variant -> Triton model name
    (the text model; the ids model is that name + "_ids")."""
    settings = settings or TritonSettings(max_batch_size=max_batch_size)  # `max_batch_size` when no settings
    settings.check()
    names = {}
    with atomic_dir(repo, overwrite=overwrite) as tmp:
        for variant, directory in variants.items():
            name = model_name(variant, prefix)
            model = onnx.load(str(directory / "model.onnx"), load_external_data=False)
            inputs, outputs = graph_io(model)
            gpu = variant in gpu_variants
            _write_ids_model(tmp / f"{name}_ids", directory, inputs, outputs, settings, gpu)
            if not gpu:  # the Python model runs onnxruntime on the CPU
                _write_text_model(tmp / name, directory, outputs, settings)
            names[variant] = name
        if names:
            (tmp / "kserve.yaml").write_text(kserve_manifest(prefix or next(iter(names.values()))), encoding="utf-8")
    return names


def _write_ids_model(
    where: Path,
    directory: Path,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    settings: TritonSettings,
    gpu: bool,
) -> None:
    (where / "1").mkdir(parents=True)
    shutil.copy2(directory / "model.onnx", where / "1" / "model.onnx")
    queue_us = round(settings.max_wait_ms * 1000)
    text = config_pbtxt(where.name, inputs, outputs, settings.max_batch_size, gpu=gpu, queue_delay_us=queue_us)
    (where / "config.pbtxt").write_text(text, encoding="utf-8")


def _write_text_model(where: Path, directory: Path, outputs: list[TensorSpec], settings: TritonSettings) -> None:
    import json

    from studentpack.model import adapter

    record = json.loads((directory / "export.json").read_text(encoding="utf-8"))
    classifier = record.get("kind") == "classifier"
    graph_output = next(o for o in outputs if o.name == ("logits" if classifier else "sentence_embedding"))
    output = TensorSpec("logits" if classifier else "embedding", "TYPE_FP32", graph_output.dims)
    tokenizer = adapter.load_tokenizer(directory)
    if not (directory / "tokenizer.json").is_file():
        raise UserError(f"{directory} has no tokenizer.json (a fast tokenizer); the Triton text model needs one")
    (where / "1").mkdir(parents=True)
    for file in ("model.onnx", "tokenizer.json", "export.json"):
        shutil.copy2(directory / file, where / "1" / file)
    shutil.copy2(_MODEL_PY, where / "1" / "model.py")
    parameters = {
        MAX_LENGTH_PARAMETER: str(min(settings.max_length, int(record.get("max_length") or settings.max_length))),
        SOURCE_SHA_PARAMETER: hash_directory(directory),  # lets reports join Triton's figures to the variant
        "pad_token_id": str(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        "intra_op_threads": str(settings.threads),
        # as `studentpack serve` does: a batch-dependent variant (one INT8 scale per batch) runs one text per
        # call, so Triton and serve give a text the same vector whatever else is in the request
        PER_TEXT_PARAMETER: "0" if (record.get("batch_invariance") or {}).get("invariant", True) else "1",
    }
    text = text_config_pbtxt(where.name, output, settings, parameters)
    (where / "config.pbtxt").write_text(text, encoding="utf-8")


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
