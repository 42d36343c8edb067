"""`export_variants`: model directory -> gated ONNX variants under one output directory.

    <out>/<variant>/{model.onnx, tokenizer files, config.json, export.json}   accepted variants
    <out>/rejected/<variant>/{...same...}                                      failed a gate (figures inside)

The whole of <out> is built under a temporary name and renamed into place at the end; each
variant directory inside it is itself written with `atomic_dir`. A kill at any moment leaves no
directory under the final name (only a hidden `.<out>.tmp-PID`, removed by the next export).

Order of work: fp32 (parity vs PyTorch) -> fused (parity) -> int8-dynamic from the fp32 graph (or the
fused one with `int8_source="fused"`), int8-static and fp16 from the fp32 graph (accuracy vs the fp32
graph). How each variant is made, and from which graphs, is its module in `studentpack.export.variants`;
this module plans, gates and files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from studentpack.engines.graph import graph_file, read_export_info
from studentpack.engines.ort import CUDA_PROVIDER, parse_device
from studentpack.export import presets
from studentpack.export.validate import GateError, Gates
from studentpack.export.variants import needed, registry
from studentpack.ground import isa
from studentpack.ground.atomic import TMP_MARK, atomic_dir, remove_tree, write_json
from studentpack.ground.atomic import check_writable_dir as atomic_check_writable
from studentpack.ground.errors import UserError
from studentpack.ground.isa import IsaPreset
from studentpack.ground.provenance import cpu_flags, hash_directory, hash_texts, machine, package_versions
from studentpack.model import adapter

SCHEMA = "studentpack.export/1"
REJECTED = "rejected"
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False), eager attention"
_CONFIG_FILES = ("config.json",)
_TASKS = ("stsb",)
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
class VariantResult:
    variant: str
    accepted: bool
    path: Path
    record: dict[str, Any]
    reason: str = ""


@dataclass
class _Plan:
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


def plan(opts: ExportOptions) -> _Plan:
    """Every check that needs no model weights: bad input fails here, before any heavy work."""
    from studentpack.text.sources import resolve_model

    kind, _ = parse_device(opts.device)
    variants = presets.parse_variants(opts.variants or None, opts.device)
    flags = cpu_flags()
    preset = isa.resolve_isa(opts.isa, flags)
    _check_device(kind, opts.device, variants)
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
            atomic_check_writable(path.parent if not path.exists() else path, flag)
    if triton is not None and triton.resolve() == out.resolve():
        raise UserError("--triton must be a directory other than --out")
    if triton is not None:
        triton_settings(opts).check()  # before any model is loaded
    sample, calibration, corpora = _texts(opts, variants)
    task_score = _task_scorer(opts, config)
    return _Plan(source, config, variants, preset, flags, out, triton, sample, calibration, corpora, task_score)


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


def _check_device(kind: str, device: str, variants: tuple[str, ...]) -> None:
    import onnxruntime as ort

    openvino = [v for v in variants if v in presets.OPENVINO_VARIANTS]
    if openvino and kind == "cuda":
        raise UserError(
            f"{openvino[0]} runs on the CPU only (OpenVINO has no CUDA device); export it with --device cpu"
        )
    if openvino:
        _check_openvino(openvino)

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
        from studentpack.engines.ort import check_providers

        check_providers(device, providers)
        assert CUDA_PROVIDER in providers


def _check_openvino(variants: list[str]) -> None:
    import importlib.util

    missing = [m for m in ("openvino", "nncf") if importlib.util.find_spec(m) is None]
    if "openvino-int8" not in variants and "nncf" in missing:
        missing.remove("nncf")
    if missing:
        raise UserError(
            f"the {variants[0]} variant needs {' and '.join(missing)}, which this install lacks: "
            "pip install 'studentpack[openvino]'"
        )


def _texts(opts: ExportOptions, variants: tuple[str, ...]) -> tuple[list[str], list[str], dict[str, Any]]:
    """Accuracy sample and calibration texts; disjoint when they come from the same corpus."""
    from studentpack.text.corpus import load_corpus
    from studentpack.text.sources import EMBEDDED_CORPUS

    needs_sample = any(v in presets.ACCURACY_VARIANTS for v in variants)
    needs_calibration = any(v in presets.CALIBRATED_VARIANTS for v in variants)
    sample_spec = opts.sample or EMBEDDED_CORPUS
    calibration_spec = opts.calibration or EMBEDDED_CORPUS
    sample: list[str] = []
    calibration: list[str] = []
    corpora: dict[str, Any] = {}
    if needs_sample:
        texts = load_corpus([sample_spec]).texts
        order = np.random.default_rng(0).permutation(len(texts))
        sample = [texts[i] for i in order[: opts.sample_texts]]
        extra = _gate_extras(sample, opts)
        corpora["sample"] = {"source": sample_spec, "texts": len(sample), **extra.describe}
        sample = sample + extra.texts
        corpora["sample"]["sha256"] = hash_texts(sample)
        if needs_calibration and calibration_spec == sample_spec:
            calibration = [texts[i] for i in order[opts.sample_texts : opts.sample_texts + opts.calibration_texts]]
    if needs_calibration:
        if not calibration:
            texts = load_corpus([calibration_spec]).texts
            order = np.random.default_rng(1).permutation(len(texts))
            calibration = [texts[i] for i in order[: opts.calibration_texts]]
        if not calibration:
            raise UserError(f"calibration corpus {calibration_spec} leaves no texts after the accuracy sample")
        corpora["calibration"] = {
            "source": calibration_spec,
            "texts": len(calibration),
            "sha256": hash_texts(calibration),
        }
    return sample, calibration, corpora


@dataclass(frozen=True)
class _Extras:
    texts: list[str]
    describe: dict[str, Any]


_LONG_TEXTS = 16  # inputs cut at the maximum length, in every accuracy gate
_OTHER_GENRE_TEXTS = 32


def _gate_extras(sample: list[str], opts: ExportOptions) -> _Extras:
    """Texts the accuracy gates see beside the sample: inputs near the maximum length (sample texts joined
    until they must be cut) and, for the default sample, another genre of embedded text."""
    from studentpack.text.corpus import EMBEDDED, load_corpus

    long: list[str] = []
    current: list[str] = []
    for text in sample:  # consecutive sample texts joined until they hold more words than tokens fit
        current.append(text)
        if sum(len(t.split()) for t in current) > opts.max_length:
            long.append(" ".join(current))
            current = []
        if len(long) == _LONG_TEXTS:
            break
    other: list[str] = []
    other_spec = None
    if opts.sample is None:
        from studentpack.text.sources import EMBEDDED_CORPUS

        other_spec = next(spec for spec in EMBEDDED if spec != EMBEDDED_CORPUS)
        texts = load_corpus([other_spec]).texts
        order = np.random.default_rng(2).permutation(len(texts))
        other = [texts[i] for i in order[:_OTHER_GENRE_TEXTS]]
    return _Extras(long + other, {"long_texts": len(long), "other_genre": other_spec, "other_genre_texts": len(other)})


def _task_scorer(opts: ExportOptions, config: dict[str, Any]) -> Callable[[Any], float] | None:
    """`--eval-task stsb --eval-data FILE`: STS-B Spearman x100 through studentpack.tasks."""
    if opts.eval_task is None:
        if opts.eval_data:
            raise UserError("--eval-data needs --eval-task")
        return None
    if opts.eval_task not in _TASKS:
        raise UserError(f"unknown --eval-task {opts.eval_task!r}; export supports {', '.join(_TASKS)}")
    if not opts.eval_data:
        raise UserError("--eval-task needs --eval-data (a local file: export downloads nothing)")
    from studentpack.engines import is_classifier_config

    if is_classifier_config(config):
        raise UserError("--eval-task stsb scores sentence embeddings; this model is a classifier")
    from studentpack.tasks import data as task_data
    from studentpack.tasks import stsb

    pairs = task_data.stsb_pairs(task_data.read_table(task_data.locate(opts.eval_data, "eval")), task_data.Columns())
    if opts.eval_limit:
        pairs = task_data.head(pairs, opts.eval_limit)

    def score(encoder: Any) -> float:
        return 100.0 * float(stsb.zeroshot(encoder, pairs)["spearman"])

    return score


def remove_stale_temporaries(final: Path) -> None:
    """Remove `.NAME.tmp-PID` / `.NAME.old-PID` siblings left by killed exports (PID no longer running)."""
    if not final.parent.is_dir():
        return
    prefixes = (f".{final.name}{TMP_MARK}", f".{final.name}.old-")
    for path in final.parent.iterdir():
        for prefix in prefixes:
            pid = path.name[len(prefix) :]
            if path.name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
                remove_tree(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def export_variants(opts: ExportOptions, log: Callable[[str], None] = print) -> list[VariantResult]:
    """Build, gate and write every requested variant; returns one result per variant."""
    started = time.perf_counter()
    p = plan(opts)
    remove_stale_temporaries(p.out)
    if p.triton is not None:
        remove_stale_temporaries(p.triton)
    with atomic_dir(p.out, overwrite=opts.overwrite) as tmp:
        results = _Builder(opts, p, tmp, log).run()
        accepted = {r.variant: r.path for r in results if r.accepted and r.variant not in presets.OPENVINO_VARIANTS}
        for r in results:  # paths under their final names
            r.path = p.out / r.path.relative_to(tmp)
        if p.triton is not None and accepted:
            from studentpack.export.triton import write_repository

            settings = triton_settings(opts)
            names = write_repository(
                p.triton,
                accepted,
                prefix=p.source.name if p.source.origin != "local" else p.source.path.name,
                max_batch_size=opts.triton_max_batch,
                overwrite=opts.overwrite,
                settings=settings,
            )
            log(f"triton repository {p.triton}: {', '.join(f'{n} (text), {n}_ids' for n in names.values())}")
    log(f"export finished in {time.perf_counter() - started:.1f}s")
    return results


class _Builder:
    """Builds the graphs in <tmp>/.work, gates them, and files each under its final place in <tmp>."""

    def __init__(self, opts: ExportOptions, p: _Plan, tmp: Path, log: Callable[[str], None]) -> None:
        self.opts, self.p, self.tmp, self.log = opts, p, tmp, log
        self.work = tmp / ".work"
        self.work.mkdir()
        self.source_hash = hash_directory(p.source.path)
        self.versions = package_versions()
        self._reference: _Memo | None = None

    def run(self) -> list[VariantResult]:
        from studentpack.export import onnx as export_onnx

        self.tokenizer = adapter.load_tokenizer(self.p.source.path)
        self.info = export_onnx.describe(self.p.config, self.tokenizer, self.p.source.path)
        self.log(f"loading {self.p.source.path} ({self.info.kind}, {self.info.num_layers} layers)")
        self.module = export_onnx.load_graph_module(self.p.source.path, self.info, self.opts.allow_pickle)
        wanted = self.p.variants
        build = needed(wanted, self.opts)
        results: dict[str, VariantResult] = {}
        built: dict[str, tuple[Path, dict[str, Any], GateError | None]] = {}
        for variant, spec in registry().items():  # build order: parents first
            if variant in build:
                built[variant] = self._build(variant, functools.partial(spec.make, self))
        for variant in wanted:
            results[variant] = self._file(variant, *built[variant])
        remove_tree(self.work)
        accepted = {v: r.path for v, r in results.items() if r.accepted}
        if self.opts.speed_trial and len(accepted) > 1:
            self._speed_trial(accepted, results)
        return [results[v] for v in wanted]

    def _speed_trial(self, accepted: dict[str, Path], results: dict[str, VariantResult]) -> None:
        from studentpack.export.speed import speed_trial

        texts = self.p.sample or self.p.calibration
        if not texts:
            from studentpack.text.corpus import load_corpus
            from studentpack.text.sources import EMBEDDED_CORPUS

            texts = load_corpus([EMBEDDED_CORPUS]).texts[:512]
        batches = [int(shape) for shape in self.opts.speed_shapes if shape != "text"]
        blocks = speed_trial(accepted, self.tokenizer, texts, self.opts.threads, self.info.max_length, batches=batches,
                             text="text" in self.opts.speed_shapes, log=self.log)  # fmt: skip
        for variant, block in blocks.items():
            results[variant].record["speed"] = block
            write_json(accepted[variant] / "export.json", results[variant].record)

    # ---------------------------------------------------------------- building

    def _dir(self, variant: str) -> Path:
        directory = self.work / variant
        directory.mkdir()
        self.tokenizer.save_pretrained(str(directory))
        for name in _CONFIG_FILES:
            if (self.p.source.path / name).is_file():
                shutil.copy2(self.p.source.path / name, directory / name)
        return directory

    def _build(
        self, variant: str, make: Callable[[Path], dict[str, Any]]
    ) -> tuple[Path, dict[str, Any], GateError | None]:
        started = time.perf_counter()
        directory = self._dir(variant)
        self.log(f"{variant}: building")
        figures = make(directory)
        # the gate's session reads kind, labels and the variant's runtime settings (OpenVINO precision) here
        write_json(directory / "export.json", self._record(variant, figures))
        failure: GateError | None = None
        try:
            figures.update(self._gate(variant, directory))
        except GateError as exc:
            failure = exc
            figures[_gate_key(variant)] = exc.figures
        base_failed = variant != "fp32" and self._base_failure(variant)
        if base_failed and failure is None:
            failure = GateError(base_failed, {})
        figures["seconds"] = round(time.perf_counter() - started, 2)
        return directory, figures, failure

    def _base_failure(self, variant: str) -> str:
        """A variant built from a graph that failed parity is not handed over either."""
        for parent in registry()[variant].parents(self.opts):
            if getattr(self, f"_{parent}_failed", False):
                return f"built from the {parent} graph, which failed parity"
        return ""

    def calibration_feeds(self, batch: int = 8) -> list[dict[str, np.ndarray]]:
        length = min(self.opts.max_length, self.info.max_length)
        feeds = []
        for i in range(0, len(self.p.calibration), batch):
            enc = self.tokenizer(
                self.p.calibration[i : i + batch], padding=True, truncation=True, max_length=length, return_tensors="np"
            )
            feeds.append({name: np.asarray(enc[name], dtype=np.int64) for name in self.info.input_names if name in enc})
        return feeds

    # ---------------------------------------------------------------- gates

    def _gate(self, variant: str, directory: Path) -> dict[str, Any]:
        from studentpack.export import validate

        if variant in presets.PARITY_VARIANTS:
            session = self._session(directory)
            try:
                figures = validate.check_parity(
                    validate.torch_runner(self.module, self.info),
                    session.run,
                    session.output_names,
                    self.info,
                    self.opts.gates.max_abs,
                )
            except validate.ParityError:
                setattr(self, f"_{variant}_failed", True)
                raise
            self.log(f"{variant}: parity max abs {figures['max_abs']:.2e} (<= {self.opts.gates.max_abs:g})")
            return {"parity": {**figures, **_gated_as(session)}, **self._batch_invariance(variant, session)}
        if self._reference is None:
            self._reference = _Memo(self._encoder(self.work / "fp32", "fp32"))
        reference = self._reference
        candidate = self._encoder(directory, variant)
        figures = validate.check_accuracy(
            reference, candidate, self.p.sample, self.opts.gates, self.p.task_score, self.opts.eval_task or ""
        )
        self.log(f"{variant}: {_accuracy_line(figures)}")
        invariance = self._batch_invariance(variant, candidate.session)
        return {"accuracy": {**figures, **_gated_as(candidate.session)}, **invariance}

    def _batch_invariance(self, variant: str, session: Any) -> dict[str, Any]:
        """Recorded, not gated: a batch-dependent variant is accurate, but the server runs it one text per call."""
        from studentpack.batch_invariance import PROBE_TEXTS, is_invariant, worst_batch_cosine

        output = "logits" if session.kind == "classifier" else "sentence_embedding"
        if output not in session.output_names:
            return {}
        worst = worst_batch_cosine(lambda texts: session.run_texts(texts, [output])[output])
        invariant = is_invariant(worst)
        self.log(f"{variant}: batch invariance: worst cosine {worst:.6f} alone vs in a mixed batch"
                 + ("" if invariant else " (batch-dependent: served one text per call)"))  # fmt: skip
        return {
            "batch_invariance": {"worst_cosine": round(worst, 6), "invariant": invariant, "texts": len(PROBE_TEXTS)}
        }

    def _session(self, directory: Path) -> Any:
        from studentpack.engines.graph import session_class

        graph = graph_file(directory)
        assert graph is not None, directory
        engine: Any = session_class(graph)  # the engine's own __init__ (graph, tokenizer, ...)
        return engine(
            graph,
            self.tokenizer,
            device=self.opts.device,
            threads=self.opts.threads,
            max_length=self.info.max_length,
            warmup=False,
            info={**self.info.as_dict(), **read_export_info(directory)},  # the variant's own settings too
        )

    def _encoder(self, directory: Path, variant: str) -> Any:
        from studentpack.engines.graph import GraphEncoder

        session = self._session(directory)
        session.max_length = min(self.opts.max_length, self.info.max_length)
        return GraphEncoder(session, variant)

    # ---------------------------------------------------------------- filing

    def _file(self, variant: str, directory: Path, figures: dict[str, Any], failure: GateError | None) -> VariantResult:
        accepted = failure is None
        reason = "" if accepted else str(failure)
        record = self._record(variant, figures, graph_file(directory), reason)
        write_json(directory / "export.json", record)
        dest = self.tmp / variant if accepted else self.tmp / REJECTED / variant
        with atomic_dir(dest) as staging:
            for item in sorted(directory.iterdir()):
                os.replace(item, staging / item.name)
        self.log(f"{variant}: {'accepted' if accepted else 'REJECTED: ' + reason} -> {dest.relative_to(self.tmp)}")
        return VariantResult(variant, accepted, dest, record, reason)

    def _record(self, variant: str, figures: dict[str, Any], model: Path | None = None, reason: str = "") -> dict:
        record: dict[str, Any] = {
            "schema": SCHEMA,
            "variant": variant,
            "status": "accepted" if not reason else "rejected",
            "reason": reason or None,
            **self.info.as_dict(),
            "source": {
                "path": str(self.p.source.path),
                "name": self.p.source.name,
                "origin": self.p.source.origin,
                "sha256": self.source_hash,
            },
            "exporter": EXPORTER,
            "opset": _opset(model),
            "ir_version": _ir_version(model),
            "target_device": "cuda" if variant == "fp16" or self.opts.device.startswith("cuda") else "cpu",
            "isa": self._isa() if variant in presets.INT8_VARIANTS else None,
            "gates": dataclasses.asdict(self.opts.gates),
            # the longest input the gate checked: parity runs the model maximum, accuracy the sample's length;
            # `studentpack serve` refuses a longer --max-length for this variant
            "gated_length": self.info.max_length
            if variant in presets.PARITY_VARIANTS
            else min(self.opts.max_length, self.info.max_length),
            **figures,
            "corpora": {
                k: v for k, v in self.p.corpora.items() if k == "sample" or variant in presets.CALIBRATED_VARIANTS
            },
            "file_bytes": _graph_bytes(model) if model else None,
            "model_sha256": _sha256(model) if model else None,
            **({"weights_sha256": _sha256(model.with_suffix(".bin"))} if model and model.suffix == ".xml" else {}),
            "versions": self.versions,
            "machine": machine(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return record

    def _isa(self) -> dict[str, Any]:
        preset = self.p.preset
        return {
            "preset": preset.name,
            "requested": self.opts.isa,
            "description": preset.description,
            "reduce_range": preset.reduce_range,
            "cpu_flags": isa.relevant_flags(self.p.flags),
        }


class _Memo:
    """The fp32 reference encoder, scored once however many variants are compared with it."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.description = encoder.description
        self.labels = encoder.labels
        self.max_length = encoder.max_length
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}

    @property
    def truncated(self) -> int:
        return int(self.encoder.truncated)

    def encode(self, texts: Any, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        key = ("encode", batch_size, tuple(texts))
        if key not in self._cache:
            self._cache[key] = self.encoder.encode(texts, batch_size=batch_size, progress=progress)
        return self._cache[key]

    def predict(
        self, texts: Any, batch_size: int = 32, progress: bool = False, *, text_pairs: Any = None
    ) -> np.ndarray:
        key = ("predict", batch_size, tuple(texts), None if text_pairs is None else tuple(text_pairs))
        if key not in self._cache:
            self._cache[key] = self.encoder.predict(
                texts, batch_size=batch_size, progress=progress, text_pairs=text_pairs
            )
        return self._cache[key]


def _gated_as(session: Any) -> dict[str, Any]:
    """How the gate ran the variant: a variant is handed over only as it was checked."""
    precision = getattr(session, "precision", None)  # OpenVINO's inference precision
    return {"runtime": type(session).__name__, **({"inference_precision": precision} if precision else {})}


def _gate_key(variant: str) -> str:
    return "parity" if variant in presets.PARITY_VARIANTS else "accuracy"


def _accuracy_line(figures: dict[str, Any]) -> str:
    if "mean_cosine" in figures:
        line = f"cosine mean {figures['mean_cosine']:.4f} worst {figures['worst_cosine']:.4f}"
    elif "pearson" in figures:
        line = f"output correlation {figures['pearson']:.4f}"
    else:
        line = f"label agreement {figures['label_agreement']:.4f}"
    task = figures.get("task")
    if task:
        line += f"; {task['name']} {task['score']:.2f} (fp32 {task['reference']:.2f})"
    return line


def _graph_bytes(model: Path) -> int:
    """The graph and its weights: model.onnx alone, or model.xml + model.bin."""
    weights = model.with_suffix(".bin")
    return model.stat().st_size + (weights.stat().st_size if model.suffix == ".xml" and weights.is_file() else 0)


def _opset(model: Path | None) -> int | None:
    if model is None or model.suffix != ".onnx":
        return None
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _ir_version(model: Path | None) -> int | None:
    if model is None or model.suffix != ".onnx":
        return None
    import onnx

    return int(onnx.load(str(model), load_external_data=False).ir_version)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
