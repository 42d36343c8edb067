"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNKNOWN_MODEL = "_unknown"  # label for names that are not loaded (requests never grow label sets)


@dataclass(frozen=True)
class ModelSeries:
    """One model's labelled series, looked up once (a labels() call per use costs microseconds)."""

    queue_depth: Any
    running: Any
    queue_seconds: Any
    inference_seconds: Any
    batch_size: Any
    texts: Any
    truncated: Any


class Metrics:
    def __init__(self) -> None:
        self._models: dict[str, ModelSeries] = {}
        self._requests: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "studentpack_requests", "Requests answered, by model, endpoint and HTTP status.",
            ["model", "endpoint", "status"], registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "studentpack_request_duration_seconds", "Time from request received to response ready.",
            ["model", "endpoint"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "studentpack_queue_duration_seconds", "Time a request waited before its first batch ran.",
            ["model"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "studentpack_inference_duration_seconds", "Time one batch took in the model.",
            ["model"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "studentpack_batch_size", "Items (texts) per batch run.", ["model"], buckets=_SIZES, registry=r
        )
        self.queue_depth = Gauge("studentpack_queue_depth", "Items waiting in the queue.", ["model"], registry=r)
        self.running = Gauge("studentpack_batch_running", "1 while a batch is in the model.", ["model"], registry=r)
        self.inflight = Gauge("studentpack_inflight_requests", "Requests being handled now.", registry=r)
        self.texts = Counter("studentpack_texts", "Texts processed, by model.", ["model"], registry=r)
        self.truncated = Counter(
            "studentpack_truncated_texts", "Texts cut at the model's maximum length.", ["model"], registry=r
        )

    def model(self, name: str) -> ModelSeries:
        """The model's series, created on first use (so dashboards see zeros, not gaps)."""
        series = self._models.get(name)
        if series is None:
            series = ModelSeries(
                queue_depth=self.queue_depth.labels(name),
                running=self.running.labels(name),
                queue_seconds=self.queue_seconds.labels(name),
                inference_seconds=self.inference_seconds.labels(name),
                batch_size=self.batch_size.labels(name),
                texts=self.texts.labels(name),
                truncated=self.truncated.labels(name),
            )
            series.queue_depth.set(0)
            series.running.set(0)
            self._models[name] = series
        return series

    def request_done(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        key = (model, endpoint, status)
        children = self._requests.get(key)
        if children is None:
            children = (
                self.requests.labels(model, endpoint, str(status)),
                self.request_seconds.labels(model, endpoint),
            )
            self._requests[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
