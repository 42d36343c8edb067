"""The export unit of each model (`studentpack export` as a child process), and which of its variants is served.

With `serve_variants: fastest` a model is served in the variant that ran fastest on one text at a time in
the export's speed trial, among those that passed their gate; a model of a shape already timed takes that
choice without a trial of its own (a variant's speed depends on the graph, not the weights).
"""

from __future__ import annotations

import json
from pathlib import Path

from studentpack.bench.input_digests import dir_digest, shape_key
from studentpack.bench.pipeline_config import PipelineConfig
from studentpack.bench.pipeline_inputs import PipelineInputs
from studentpack.bench.pipeline_plan import SERVED
from studentpack.bench.served_measurements import ServedModel
from studentpack.bench.stages import run_cli
from studentpack.bench.units import Units


class ExportUnits:
    def __init__(self, cfg: PipelineConfig, inputs: PipelineInputs, units: Units) -> None:
        self.cfg, self.inputs, self.units = cfg, inputs, units
        self.shape_choice: dict[str, tuple[str, str]] = {}  # model shape -> (served variant, the model it was timed on)

    def export(self, run: str, source: Path) -> list[ServedModel]:
        """Export `source` under <out>/<run>/onnx; returns the variants to serve."""
        notes = self.units.outcome.notes
        onnx_dir = self.units.out / run / "onnx"
        shape = shape_key(source)
        shared = self.shape_choice.get(shape) if self.cfg.serve_variants == "fastest" else None
        # a model of a shape already timed takes its choice: a variant's speed depends on the graph, not the weights
        variants = tuple(dict.fromkeys(("fp32", shared[0]))) if shared else self.cfg.export_variants
        inputs = {"source": dir_digest(source), "variants": variants, "device": self.cfg.device}

        def work() -> None:
            args = ["export", str(source), "--onnx", "--out", str(onnx_dir), "--overwrite"]
            args += ["--variants", ",".join(variants), "--device", self.cfg.device]
            args += ["--no-speed-trial"] if shared else ["--speed-shapes", "text"]  # what the choice reads
            if run_cli(args, self.units.log(f"export-{run}")) == 1:
                rejected = sorted(p.name for p in (onnx_dir / "rejected").glob("*"))
                notes.append(f"{run}: variant(s) rejected by their gate: {', '.join(rejected)}")

        if not self.units.run(f"export:{run}", f"export {run} ({', '.join(variants)})", inputs, onnx_dir, work):
            # what lies in onnx_dir is an earlier export's, of other inputs: serving it would report a stale model
            notes.append(f"{run}: its export failed; none of its variants is served")
            return []
        exported = [v for v in variants if (onnx_dir / v / "export.json").is_file()]
        if self.cfg.serve_variants == "fastest":
            exported = self._fastest(run, onnx_dir, exported, shared)
            if exported and not shared:
                self.shape_choice.setdefault(shape, (exported[0], run))
        return [ServedModel(f"{run}-{v}", run, v, onnx_dir / v) for v in exported]

    def _fastest(self, run: str, onnx_dir: Path, exported: list[str], shared: tuple[str, str] | None) -> list[str]:
        """The one variant to serve: the fastest accepted one on one text at a time (or, for a shape already
        timed, that model's choice when it passed its gate here); the choice goes to the notes."""
        from studentpack.bench.served_choice import Choice, fastest_accepted

        notes = self.units.outcome.notes
        records = {v: json.loads((onnx_dir / v / "export.json").read_text(encoding="utf-8")) for v in exported}
        if shared and shared[0] in records:
            choice = Choice(shared[0], {}, f"the choice for {shared[1]}, the same shape (no trial of its own)")
        else:
            choice = fastest_accepted(records)
        if choice.variant is None:
            notes.append(f"{run}: {choice.why}; nothing served")
            return []
        notes.append(f"{run}: serving {choice.variant}, {choice.why}")
        for unit in [f"loadtest:{run}-{SERVED}", *(f"served-eval:{run}-{SERVED}:{t}" for t, _ in self.inputs.tasks)]:
            self.units.clock.rename(unit, unit.replace(f"{run}-{SERVED}", f"{run}-{choice.variant}", 1))
        return [choice.variant]
