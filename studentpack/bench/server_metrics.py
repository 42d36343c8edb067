"""The server's own view of a load level: its /metrics scraped before and after, as differences.

Two dialects are understood: `studentpack serve` (studentpack_* series) and Triton Inference Server
(nv_inference_* series). Anything else yields `available: false`; a load test never fails for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from studentpack.ground.numbers import ratio

Samples = dict[str, float]  # "metric_name{model}" -> value, for the one model of interest

_OURS = (
    "studentpack_batch_size_sum",
    "studentpack_batch_size_count",
    "studentpack_queue_duration_seconds_sum",
    "studentpack_queue_duration_seconds_count",
    "studentpack_inference_duration_seconds_sum",
    "studentpack_inference_duration_seconds_count",
    "studentpack_texts_total",
    "studentpack_queue_depth",
)
_TRITON = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
)


def parse(text: str, model: str) -> Samples:
    """The known series of `model` from a Prometheus text page (label `model`)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = set(_OURS) | set(_TRITON)
    out: Samples = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return out
    for family in families:
        for sample in family.samples:
            # the parser names a counter's samples NAME_total whatever the page says (Triton's are TYPE counter
            # without the suffix): match either spelling
            name = sample.name if sample.name in wanted else sample.name.removesuffix("_total")
            if name in wanted and sample.labels.get("model") == model:
                out[name] = out.get(name, 0.0) + float(sample.value)
    return out


def difference(before: Samples | None, after: Samples | None) -> dict[str, Any]:
    """Batches run, mean batch size, mean queue and inference time per batch/request over one level."""
    if before is None or after is None:
        return {"available": False}

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    if "studentpack_batch_size_count" in after:
        return _ours(delta, after)
    if "nv_inference_exec_count" in after:
        return _triton(delta)
    return {"available": False}


def _ours(delta: Any, after: Mapping[str, float]) -> dict[str, Any]:
    batches = delta("studentpack_batch_size_count")
    return {
        "available": True,
        "dialect": "studentpack",
        "batches": int(batches),
        "texts": int(delta("studentpack_batch_size_sum")),
        "mean_batch_size": ratio(delta("studentpack_batch_size_sum"), batches, 4),
        "mean_queue_ms": ratio(
            delta("studentpack_queue_duration_seconds_sum"),
            delta("studentpack_queue_duration_seconds_count"),
            4,
            scale=1e3,
        ),
        "mean_batch_inference_ms": ratio(
            delta("studentpack_inference_duration_seconds_sum"),
            delta("studentpack_inference_duration_seconds_count"),
            4,
            scale=1e3,
        ),
        "queue_depth_after": after.get("studentpack_queue_depth"),
    }


def _triton(delta: Any) -> dict[str, Any]:
    executions = delta("nv_inference_exec_count")
    requests = delta("nv_inference_request_success")
    return {
        "available": True,
        "dialect": "triton",
        "batches": int(executions),
        "texts": int(delta("nv_inference_count")),
        "mean_batch_size": ratio(delta("nv_inference_count"), executions, 4),
        "mean_queue_ms": ratio(delta("nv_inference_queue_duration_us"), requests, 4, scale=1e-3),
        "mean_request_inference_ms": ratio(delta("nv_inference_compute_infer_duration_us"), requests, 4, scale=1e-3),
    }
