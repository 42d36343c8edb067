"""`summarize` and `server_metrics` on synthetic inputs whose right answers are known by hand."""

from __future__ import annotations

import pytest

from studentpack.bench import server_metrics
from studentpack.bench.loadtest import summarize


def _raw(records: list[tuple[float, float, int, bool, str]], window: tuple[float, float]) -> dict:
    return {"records": records, "window": list(window), "cpu_seconds": 0.5, "stopped_by": "duration"}


def test_a_window_counts_the_answers_that_arrive_in_it() -> None:
    # one user, 100 ms per request, back to back from t=0; the window is [1.05 s, 3.05 s]
    records = [(0.1 * i, 100.0, 200, True, "") for i in range(30)]  # answers at 0.1, 0.2, ..., 3.0 s
    level = summarize(_raw(records, (1.05, 3.05)), rows=1, machine_cores=2)
    # answers at 1.1 ... 3.0 s: 20 in 2 s, the request that left at 1.0 s (before the window) included
    assert level["ok"] == level["requests"] == 20 and level["warmup_requests"] == 10
    assert level["requests_per_s"] == pytest.approx(10.0) and level["texts_per_s"] == pytest.approx(10.0)
    assert level["latency_ms"]["p50"] == level["latency_ms"]["max"] == 100.0
    assert level["client_cpu"]["cores_used"] == pytest.approx(0.25)


def test_failed_requests_are_not_throughput() -> None:
    records = [
        (1.0 + 0.1 * i, 50.0, 200 if i % 2 else 500, bool(i % 2), "" if i % 2 else "HTTP 500") for i in range(10)
    ]
    level = summarize(_raw(records, (1.0, 2.0)), rows=4, machine_cores=2)
    assert level["requests"] == 10 and level["ok"] == 5 and level["failures"] == 5
    assert level["requests_per_s"] == pytest.approx(5.0) and level["texts_per_s"] == pytest.approx(20.0)
    assert level["failures_by_status"] == {"500": 5} and level["failure_examples"] == ["HTTP 500"]


def test_no_answer_gives_no_latency() -> None:
    level = summarize(_raw([(1.0, 10.0, 0, False, "timeout")], (1.0, 2.0)), rows=1, machine_cores=2)
    assert level["latency_ms"] is None and level["failures_by_status"] == {"no response": 1}


OURS = """\
studentpack_batch_size_sum{{model="m"}} {texts}
studentpack_batch_size_count{{model="m"}} {batches}
studentpack_queue_duration_seconds_sum{{model="m"}} {queue}
studentpack_queue_duration_seconds_count{{model="m"}} {texts}
studentpack_inference_duration_seconds_sum{{model="m"}} {infer}
studentpack_inference_duration_seconds_count{{model="m"}} {batches}
studentpack_queue_depth{{model="m"}} 0
studentpack_batch_size_count{{model="other"}} 999
"""

# as tritonserver writes its page: every series declared a counter, none named *_total
TRITON = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="m",version="1"}} {requests}
# TYPE nv_inference_count counter
nv_inference_count{{model="m",version="1"}} {texts}
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{model="m",version="1"}} {batches}
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="m",version="1"}} {queue_us}
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="m",version="1"}} {infer_us}
"""


def test_our_metrics_page_differences() -> None:
    before = server_metrics.parse(OURS.format(texts=10, batches=5, queue=0.01, infer=0.1), "m")
    after = server_metrics.parse(OURS.format(texts=50, batches=15, queue=0.05, infer=0.3), "m")
    got = server_metrics.difference(before, after)
    assert got["dialect"] == "studentpack" and got["batches"] == 10 and got["texts"] == 40
    assert got["mean_batch_size"] == 4.0
    assert got["mean_queue_ms"] == pytest.approx(1.0) and got["mean_batch_inference_ms"] == pytest.approx(20.0)


def test_triton_metrics_page_differences() -> None:
    before = server_metrics.parse(TRITON.format(requests=0, texts=0, batches=0, queue_us=0, infer_us=0), "m")
    after = server_metrics.parse(TRITON.format(requests=20, texts=60, batches=6, queue_us=40000, infer_us=200000), "m")
    got = server_metrics.difference(before, after)
    assert got["dialect"] == "triton" and got["batches"] == 6 and got["texts"] == 60
    assert got["mean_batch_size"] == 10.0
    assert got["mean_queue_ms"] == pytest.approx(2.0) and got["mean_request_inference_ms"] == pytest.approx(10.0)


def test_an_unknown_page_is_unavailable() -> None:
    assert server_metrics.difference(server_metrics.parse("up 1\n", "m"), server_metrics.parse("up 1\n", "m")) == {
        "available": False
    }
    assert server_metrics.difference(None, {}) == {"available": False}
