"""`Builder`: builds each variant's graph in <tmp>/.work, gates it, and files it under its final place in <tmp>.

Graphs are built in the registry's order (a variant after the graphs it is built from); a variant built from
a graph that failed parity is rejected whatever its own gate says.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.engines.graph import graph_file
from studentpack.export.gating import VariantGate
from studentpack.export.options import ExportOptions, Plan
from studentpack.export.records import Recorder, gate_key
from studentpack.export.validate import GateError, ParityError
from studentpack.export.variants import needed, registry
from studentpack.ground.atomic import atomic_dir, remove_tree, write_json
from studentpack.ground.provenance import hash_directory, package_versions
from studentpack.model import adapter

REJECTED = "rejected"
_CONFIG_FILES = ("config.json",)


@dataclass
class VariantResult:
    variant: str
    accepted: bool
    path: Path
    record: dict[str, Any]
    reason: str = ""


class Builder:
    """Builds the graphs in <tmp>/.work, gates them, and files each under its final place in <tmp>. It is the
    `variants.BuildContext` each variant's `make` is given."""

    def __init__(self, opts: ExportOptions, p: Plan, tmp: Path, log: Callable[[str], None]) -> None:
        self.opts, self.p, self.tmp, self.log = opts, p, tmp, log
        self.work = tmp / ".work"
        self.work.mkdir()
        self.source_hash = hash_directory(p.source.path)
        self.versions = package_versions()
        self.failed_parity: set[str] = set()  # variants whose graph failed parity: none built from them is handed over

    def run(self) -> list[VariantResult]:
        from studentpack.export import onnx as export_onnx

        self.tokenizer = adapter.load_tokenizer(self.p.source.path)
        self.info = export_onnx.describe(self.p.config, self.tokenizer, self.p.source.path)
        self.log(f"loading {self.p.source.path} ({self.info.kind}, {self.info.num_layers} layers)")
        self.module = export_onnx.load_graph_module(self.p.source.path, self.info, self.opts.allow_pickle)
        self.records = Recorder(self.opts, self.p, self.info, self.source_hash, self.versions)
        self.gate = VariantGate(self.opts, self.p, self.work, self.module, self.info, self.tokenizer, self.log)
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
        write_json(directory / "export.json", self.records.record(variant, figures))
        failure: GateError | None = None
        try:
            figures.update(self.gate.check(variant, directory))
        except GateError as exc:
            failure = exc
            figures[gate_key(variant)] = exc.figures
            if isinstance(exc, ParityError):
                self.failed_parity.add(variant)
        base_failed = variant != "fp32" and self._base_failure(variant)
        if base_failed and failure is None:
            failure = GateError(base_failed, {})
        figures["seconds"] = round(time.perf_counter() - started, 2)
        return directory, figures, failure

    def _base_failure(self, variant: str) -> str:
        """A variant built from a graph that failed parity is not handed over either."""
        for parent in registry()[variant].parents(self.opts):
            if parent in self.failed_parity:
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

    # ---------------------------------------------------------------- filing

    def _file(self, variant: str, directory: Path, figures: dict[str, Any], failure: GateError | None) -> VariantResult:
        accepted = failure is None
        reason = "" if accepted else str(failure)
        record = self.records.record(variant, figures, graph_file(directory), reason)
        write_json(directory / "export.json", record)
        dest = self.tmp / variant if accepted else self.tmp / REJECTED / variant
        with atomic_dir(dest) as staging:
            for item in sorted(directory.iterdir()):
                os.replace(item, staging / item.name)
        self.log(f"{variant}: {'accepted' if accepted else 'REJECTED: ' + reason} -> {dest.relative_to(self.tmp)}")
        return VariantResult(variant, accepted, dest, record, reason)
