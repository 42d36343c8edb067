"""What one export is asked for (`ExportOptions`), and `plan`: every check that needs no model weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from studentpack.engines.ort import parse_device
from studentpack.export import presets
from studentpack.export.checks import check_device
from studentpack.export.gate_inputs import gate_texts, task_scorer
from studentpack.export.validate import Gates
from studentpack.ground import isa
from studentpack.ground.atomic import check_writable_dir
from studentpack.ground.errors import UserError
from studentpack.ground.isa import IsaPreset
from studentpack.ground.provenance import cpu_flags
from studentpack.model import adapter

_TRIAL_BATCHES = (1, 32)  # batch sizes the speed trial may time


@dataclass(frozen=True)
class ExportOptions:
    model: str
    out: str
    variants: tuple[str, ...] = ()  # empty: the device's default set
    isa: str = "auto"
    device: str = "cpu"
    per_channel: bool = True
    keep_fp32: tuple[str, ...] = ()  # node names or shell patterns left in fp32 by INT8
    # int8-dynamic quantizes the plain fp32 graph by default: on a 2-core AVX-512 machine the fused
    # graph's INT8 ran 267 ms at batch 32 (seq 128) against 222 ms from the fp32 graph (ORT still
    # fuses at load time); at batch 1 the fused one was 1.4 ms faster (8.1 vs 9.5 ms)
    int8_source: Literal["fp32", "fused"] = "fp32"
    calibration: str | None = None  # corpus spec for int8-static (default: the embedded corpus)
    calibration_method: str = "MinMax"
    calibration_texts: int = 128
    sample: str | None = None  # corpus spec for the accuracy gate (default: the embedded corpus)
    sample_texts: int = 256
    max_length: int = 128  # tokenisation length for calibration and the accuracy sample
    gates: Gates = field(default_factory=Gates)
    eval_task: str | None = None
    eval_data: str | None = None
    eval_limit: int | None = None
    triton: str | None = None
    triton_max_batch: int = 32  # the text model's dynamic batching, as `studentpack serve --max-batch`
    triton_max_wait_ms: float = 5.0  # as `studentpack serve --max-wait-ms`
    triton_instances: int = 1
    triton_threads: int = 0  # onnxruntime threads per instance (0: all cores)
    triton_env: str | None = None  # EXECUTION_ENV_PATH for the Python backend (numpy<2, onnxruntime, tokenizers)
    threads: int | None = None  # onnxruntime intra-op threads for the gates
    speed_trial: bool = True  # time the accepted variants here and record the fastest (export/speed.py)
    speed_shapes: tuple[str, ...] = ("1", "32", "text")  # batches of 128-token rows, and one text at a time
    overwrite: bool = False
    allow_pickle: bool = False


@dataclass
class Plan:
    source: Any  # sources.ModelSource
    config: dict[str, Any]
    variants: tuple[str, ...]
    preset: IsaPreset
    flags: list[str]
    out: Path
    triton: Path | None
    sample: list[str]
    calibration: list[str]
    corpora: dict[str, Any]
    task_score: Callable[[Any], float] | None


def plan(opts: ExportOptions) -> Plan:
    """Every check that needs no model weights: bad input fails here, before any heavy work."""
    from studentpack.text.sources import resolve_model

    kind, _ = parse_device(opts.device)
    variants = presets.parse_variants(opts.variants or None, opts.device)
    flags = cpu_flags()
    preset = isa.resolve_isa(opts.isa, flags)
    check_device(kind, opts.device, variants)
    if not opts.speed_shapes or any(shape not in ("text", *map(str, _TRIAL_BATCHES)) for shape in opts.speed_shapes):
        raise UserError(f"--speed-shapes {','.join(opts.speed_shapes)}: choose from 1, 32 and text")
    if opts.calibration_method not in presets.CALIBRATION_METHODS:
        choices = ", ".join(presets.CALIBRATION_METHODS)
        raise UserError(f"unknown calibration method {opts.calibration_method!r}; choose from {choices}")
    if opts.calibration and not any(v in presets.CALIBRATED_VARIANTS for v in variants):
        names = " and ".join(presets.CALIBRATED_VARIANTS)
        raise UserError(f"--calibration is used only by the {names} variants; add one to --variants")
    for name in ("calibration_texts", "sample_texts", "max_length"):
        if getattr(opts, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    source = resolve_model(opts.model, role="model")
    config = adapter.check_encoder_dir(source.path, opts.allow_pickle)
    out = Path(opts.out).expanduser()
    triton = Path(opts.triton).expanduser() if opts.triton else None
    for path, flag in ((out, "--out"), (triton, "--triton")):
        if path is not None and path.exists() and not opts.overwrite:
            raise UserError(f"{flag} {path} exists; pass --overwrite to replace it")
        if path is not None and path.exists() and not path.is_dir():
            raise UserError(f"{flag} {path} is a file")
        if path is not None:  # the variants are built next to it: a read-only parent fails before the export
            check_writable_dir(path.parent if not path.exists() else path, flag)
    if triton is not None and triton.resolve() == out.resolve():
        raise UserError("--triton must be a directory other than --out")
    if triton is not None:
        triton_settings(opts).check()  # before any model is loaded
    sample, calibration, corpora = gate_texts(opts, variants)
    task_score = task_scorer(opts, config)
    return Plan(source, config, variants, preset, flags, out, triton, sample, calibration, corpora, task_score)


def triton_settings(opts: ExportOptions) -> Any:
    """The Triton repository's serving settings (export.triton.TritonSettings) from the export options."""
    from studentpack.export.triton import TritonSettings

    return TritonSettings(
        max_batch_size=opts.triton_max_batch,
        max_wait_ms=opts.triton_max_wait_ms,
        instances=opts.triton_instances,
        threads=opts.triton_threads,
        max_length=opts.max_length,
        env_path=opts.triton_env,
    )
