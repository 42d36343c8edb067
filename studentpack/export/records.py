"""What a variant's export.json says: the figures of its gate, where it came from, how it was made and run."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studentpack.export import presets
from studentpack.export.options import ExportOptions, Plan
from studentpack.ground import isa
from studentpack.ground.provenance import machine

SCHEMA = "studentpack.export/1"
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False), eager attention"


@dataclass(frozen=True)
class Recorder:
    """Writes the records of one export: what every variant shares (source, options, versions) and its own figures."""

    opts: ExportOptions
    p: Plan
    info: Any  # export.onnx.GraphFacts
    source_hash: str
    versions: dict[str, str]

    def record(self, variant: str, figures: dict[str, Any], model: Path | None = None, reason: str = "") -> dict:
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


def gated_as(session: Any) -> dict[str, Any]:
    """How the gate ran the variant: a variant is handed over only as it was checked."""
    precision = getattr(session, "precision", None)  # OpenVINO's inference precision
    return {"runtime": type(session).__name__, **({"inference_precision": precision} if precision else {})}


def gate_key(variant: str) -> str:
    """The record's key for the variant's gate figures."""
    return "parity" if variant in presets.PARITY_VARIANTS else "accuracy"


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
