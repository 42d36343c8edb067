"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNKNOWN_MODEL = "_unknown"  # label for names that are not loaded (requests never grow label sets)


class Metrics:
    def __init__(self) -> None:
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

    def add_model(self, name: str) -> None:
        """Create each model's series up front so dashboards see zeros, not gaps."""
        self.queue_depth.labels(name).set(0)
        self.running.labels(name).set(0)
        self.batch_size.labels(name)
        self.queue_seconds.labels(name)
        self.inference_seconds.labels(name)
        self.texts.labels(name)
        self.truncated.labels(name)

    def render(self) -> bytes:
        return generate_latest(self.registry)
