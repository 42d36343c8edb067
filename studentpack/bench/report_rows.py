"""The report's rows: one per model x variant x device x server, with its accuracy and load-test figures.

A row's files are found by content hash; accuracy is every evaluation of those exact files (a result
measured through a served endpoint preferred, a local one used only when there is none); latency and
throughput come from the newest load test of those files on that device behind that server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studentpack.bench.collect import Found, Model, parameter_count
from studentpack.ground.isa import cpu_class


@dataclass
class Row:
    model: Model
    device: str
    name: str
    role: str  # teacher | student
    params: int | None
    method: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # "task/mode" -> value, pct, served, ...
    latency: dict[str, Any] | None = None  # p50/p95/p99 at the lowest concurrency measured
    latency_users: int | None = None
    compared_p50: float | None = None  # p50 at the report's comparison level (None: not measured there)
    cpu_class: str | None = None
    best: dict[str, Any] | None = None  # texts_per_s, users
    loadtest: str | None = None
    score: float | None = None  # mean % of teacher over the labelled metrics, or the label-free recall@10
    floor: float | None = None  # the lowest of them: what must reach the target (97% on *every* metric)
    frontier: bool = False
    baseline: bool = False
    speedup_p50: float | None = None
    speedup_throughput: float | None = None
    server: str = "studentpack"
    levels: list[dict[str, Any]] = field(default_factory=list)  # per concurrency level: users, p50..., texts/s

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run": self.model.run,
            "variant": self.model.variant,
            "device": self.device,
            "server": self.server,
            "role": self.role,
            "baseline": self.baseline,
            "frontier": self.frontier,
            "params": self.params,
            "size_bytes": self.model.size_bytes,
            "method": self.method,
            "metrics": self.metrics,
            "score": self.score,
            "score_floor": self.floor,
            "latency_ms": self.latency,
            "latency_users": self.latency_users,
            "compared_p50_ms": self.compared_p50,
            "cpu_class": self.cpu_class,
            "best_throughput": self.best,
            "speedup_p50": self.speedup_p50,
            "speedup_throughput": self.speedup_throughput,
            "path": str(self.model.path),
            "sha256": self.model.sha256,
            "loadtest": self.loadtest,
            "levels": self.levels,
        }


def build_rows(found: Found) -> list[Row]:
    """One row per load-tested files x device x server (the newest load test), plus a "not served" row for
    each evaluated model never load-tested; teachers first on each device."""
    rows: list[Row] = []
    tested: set[tuple[str, str, str]] = set()
    for doc in sorted(found.loadtests, key=lambda d: d.get("created", "")):
        target = doc.get("target") or {}
        info = target.get("info") or {}
        model = found.models.get(info.get("sha256", ""))
        if model is None:
            found.skipped.append(f"{doc['_file']}: the served model's files were not found under the given dirs")
            continue
        device = _device(doc, info)
        server = str(target.get("server") or "studentpack")
        key = (model.sha256, device, server)
        if key in tested:  # a newer load test of the same files, device and server replaces the older
            rows = [r for r in rows if (r.model.sha256, r.device, r.server) != key]
        tested.add(key)
        row = _row(found, model, device, server)
        _latency(row, doc)
        rows.append(row)
    for model in found.models.values():
        if not any(r.model.sha256 == model.sha256 for r in rows) and _evals_of(found, model.sha256):
            rows.append(_row(found, model, "not served"))
    return sorted(
        rows,
        key=lambda r: (
            r.device,
            r.role != "teacher",
            r.model.run,
            _variant_order(r.model.variant),
            r.server != "studentpack",
        ),
    )


def _device(doc: dict[str, Any], info: dict[str, Any]) -> str:
    device = str(info.get("device") or "unknown")
    if device == "cuda":  # onnxruntime says "cuda", torch "cuda:0": one device
        device = "cuda:0"
    gpus = (doc.get("machine") or {}).get("gpus") or []
    if device.startswith("cuda") and gpus:
        return f"{device} ({gpus[0].split(',')[0]})"
    return device


def _variant_order(variant: str) -> int:
    order = ("torch", "fp32", "fused", "openvino", "int8-dynamic", "int8-static", "openvino-int8", "fp16")
    return order.index(variant) if variant in order else len(order)


def _row(found: Found, model: Model, device: str, server: str = "studentpack") -> Row:
    family = found.models.get(model.family)
    manifest = model.manifest or (family.manifest if family else None)
    role = "teacher" if model.family in found.teacher_shas else "student"
    run = "teacher" if role == "teacher" else model.run
    model.run = run
    params = (manifest or {}).get("student", {}).get("parameters")
    if params is None:
        params = parameter_count(family.path if family else model.path)
    name = f"{run} {model.variant}" + ("" if server == "studentpack" else f" on {server}")
    row = Row(model, device, name, role, params, _method(manifest, role), server=server)
    _accuracy(row, found)
    return row


def _method(manifest: dict[str, Any] | None, role: str) -> str:
    if role == "teacher":
        return "teacher"
    if not manifest:
        return "?"
    student = manifest.get("student") or {}
    teacher = manifest.get("teacher") or {}
    parts = [f"{manifest.get('method')}", f"{student.get('layers')}x{student.get('hidden')}"]
    if manifest.get("steps"):
        parts.append(f"{manifest['steps']} steps")
    method = str(manifest.get("method", ""))
    if "hs" in method.split("+") and manifest.get("layer_map"):
        pairs = manifest["layer_map"].get("pairs") or []
        parts.append(f"map {manifest['layer_map'].get('strategy')} " + ",".join(f"{s}:{t}" for s, t in pairs))
    if "mha" in method.split("+") and manifest.get("teacher_layer"):
        parts.append(
            f"T{manifest['teacher_layer']}/{teacher.get('layers')}, {manifest.get('relation_heads')} rel. heads"
        )
    init = manifest.get("init_map") or {}
    if init.get("pairs"):
        parts.append("init " + ",".join(str(t) for _, t in init["pairs"]))
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------- accuracy


def _evals_of(found: Found, sha: str) -> list[dict[str, Any]]:
    return [e for e in found.evals if (e.get("details") or {}).get("model_sha256") == sha]


def _pick(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task/mode: the newest served result, else the newest local one."""
    chosen: dict[str, dict[str, Any]] = {}
    for result in sorted(results, key=lambda e: (_served(e), e.get("created", ""))):
        chosen[f"{result.get('task')}/{result.get('mode')}"] = result
    return chosen


def _served(result: dict[str, Any]) -> bool:
    return bool((result.get("details") or {}).get("served"))


def _accuracy(row: Row, found: Found) -> None:
    for key, result in _pick(_evals_of(found, row.model.sha256)).items():
        row.metrics[key] = {
            "metric": result.get("metric"),
            "value": result.get("value"),
            "served": _served(result),
            "data": result.get("data"),
            "n": result.get("n"),
            "pct_of_teacher": None,
        }


# ------------------------------------------------------------------------------------------- latency


def _latency(row: Row, doc: dict[str, Any]) -> None:
    levels = [lv for lv in doc.get("levels", []) if lv.get("latency_ms")]
    row.loadtest = doc["_file"]
    row.levels = [
        {"users": lv["users"], **lv["latency_ms"], "texts_per_s": lv.get("texts_per_s"), "failures": lv.get("failures")}
        for lv in sorted(levels, key=lambda lv: lv["users"])
    ]
    if not levels:
        return
    lowest = min(levels, key=lambda lv: lv["users"])
    row.latency, row.latency_users = lowest["latency_ms"], lowest["users"]
    flags = (doc.get("machine") or {}).get("cpu_flags")
    row.cpu_class = cpu_class(flags, (doc.get("machine") or {}).get("machine")) if flags else None
    best = max(levels, key=lambda lv: lv["texts_per_s"])
    row.best = {"texts_per_s": best["texts_per_s"], "users": best["users"]}
