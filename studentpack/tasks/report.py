"""One evaluation's result: the JSON object, the human table, and `eval.json` (merged, written atomically)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studentpack import __version__
from studentpack.ground import atomic
from studentpack.ground.errors import UserError

EVAL_FORMAT = "studentpack.eval/1"
EVAL_FILE = "eval.json"


@dataclass
class EvalResult:
    """Metric values are x100 (Spearman x100, accuracy in %, cosine x100)."""

    task: str
    mode: str
    metric: str
    value: float | None
    n: int
    model: str
    data: str
    seconds: float
    truncated: int
    max_length: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "mode": self.mode,
            "metric": self.metric,
            "value": _finite(self.value),
            "n": self.n,
            "model": self.model,
            "data": self.data,
            "seconds": round(self.seconds, 3),
            "truncated": self.truncated,
            "max_length": self.max_length,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "details": self.details,
            "studentpack": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def scaled(value: float | None) -> float | None:
    """A fraction as x100, rounded for reports; NaN (undefined) becomes None."""
    return None if value is None or not math.isfinite(value) else round(100.0 * value, 4)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def table(result: EvalResult) -> str:
    """The human-readable summary printed on stdout."""
    rows: list[tuple[str, str]] = [
        ("task", f"{result.task} ({result.mode})"),
        ("model", result.model),
        ("data", result.data),
        ("examples", f"{result.n} ({result.truncated} truncated at {result.max_length} tokens)"),
    ]
    for name, value in result.metrics.items():
        shown = "n/a" if value is None else f"{value:.2f}"
        rows.append((name, shown + ("  <- metric (x100)" if name == result.metric else "")))
    for name in ("train_n", "epochs", "seed", "teacher", "saved_model"):
        if name in result.details:
            rows.append((name.replace("_", " "), str(result.details[name])))
    rows.append(("seconds", f"{result.seconds:.1f}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def load_existing(path: Path) -> dict[str, Any]:
    """The eval file at `path` (empty if none); anything else there is refused, never overwritten."""
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a directory")
    if not path.exists():
        return {"format": EVAL_FORMAT, "results": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} exists but is not a readable eval file; move it or pass --out") from exc
    if not isinstance(data, dict) or data.get("format") != EVAL_FORMAT or not isinstance(data.get("results"), dict):
        raise UserError(f"{path} exists but is not a studentpack eval file; move it or pass --out")
    return data


def save(result: EvalResult, path: Path, model_key: str) -> None:
    """Merge the result into `path` under results[model_key]["task/mode"] and write it atomically.

    Read-merge-write: two evaluations finishing at the same instant into one file may lose one entry.
    """
    data = load_existing(path)
    data["results"].setdefault(model_key, {})[f"{result.task}/{result.mode}"] = result.to_json()
    try:
        atomic.write_json(path, data)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from exc
