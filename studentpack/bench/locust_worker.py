"""One load level, run by locust in a process of its own: `python -m studentpack.bench.locust_worker SPEC OUT`.

Importing locust patches the standard library with gevent, so this module is only ever run as a
child process (never imported by the CLI or the server). It starts `users` closed-loop
FastHttpUsers (no think time) against one endpoint, lets them warm up, then measures for
`duration_s` seconds or until `max_requests` measured requests, whichever comes first.

Every request's exact latency comes from locust's request event (a float in milliseconds, taken
with perf_counter), not from locust's statistics, which round. Requests that start during the
warm-up are counted apart and left out of the figures. The worker's own CPU time over the
measured window is recorded, so the parent can tell when the load generator saturated its core.

SPEC (JSON): host, path, bodies (request bodies, each a JSON string), rows (texts per body),
check ("embeddings" | "infer" | "classify"), users, warmup_s, duration_s, max_requests,
timeout_s, headers, cpus (optional list of CPU ids to pin this process to), metrics_path (the
server's Prometheus page, scraped as the measured window opens and closes; optional).
OUT (JSON): requests as [start offset s, latency ms, status, ok, error] rows, the window, CPU
seconds, and the two metrics pages.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _check(kind: str, body: bytes, rows: int) -> str:
    """'' when the response body carries `rows` results, else what is wrong with it."""
    try:
        data = json.loads(body)
        if kind == "infer":
            got = int(data["outputs"][0]["shape"][0])
        else:
            got = len(data["data"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "unreadable response body"
    return "" if got == rows else f"{got} results for {rows} texts"


def _metrics_page(host: str, headers: dict[str, str], path: str | None) -> str | None:
    """The server's metrics text at this instant (None where it has none); cooperative under gevent."""
    if not path:
        return None
    import urllib.request

    request = urllib.request.Request(host.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode("utf-8", "replace") if response.status == 200 else None
    except (OSError, ValueError):
        return None


def run(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("cpus"):
        os.sched_setaffinity(0, set(spec["cpus"]))
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    bodies: list[str] = spec["bodies"]
    rows: list[int] = spec["rows"]
    path, kind, headers = spec["path"], spec["check"], {"Content-Type": "application/json", **spec["headers"]}
    records: list[tuple[float, float, int, bool, str]] = []
    limit = int(spec["max_requests"])
    # the measured window opens after the warm-up and closes at the deadline or the limit-th measured answer
    state: dict[str, Any] = {"next": 0, "measuring_from": float("inf"), "measured": 0, "closed_at": None}

    class Client(FastHttpUser):
        host = spec["host"]
        wait_time = constant(0)  # closed loop: the next request leaves when the answer is in
        network_timeout = float(spec["timeout_s"])
        connection_timeout = float(spec["timeout_s"])
        concurrency = 1  # one request in flight per user: one keep-alive connection each

        @task
        def send(self) -> None:
            i = state["next"]
            state["next"] = i + 1
            k = i % len(bodies)
            with self.client.post(path, data=bodies[k], headers=headers, catch_response=True, name=path) as resp:
                if resp.status_code == 200:
                    problem = _check(kind, resp.content or b"", rows[k])
                    if problem:
                        resp.failure(problem)
                else:
                    resp.failure(f"HTTP {resp.status_code}")

    env = Environment(user_classes=[Client], host=spec["host"], catch_exceptions=True)
    started = time.time()

    def on_request(start_time: float, response_time: float, exception: Any, response: Any, **_: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        offset = start_time - started
        records.append((offset, float(response_time), status, exception is None, str(exception or "")[:120]))
        if offset >= state["measuring_from"] and state["closed_at"] is None:
            state["measured"] += 1
            if state["measured"] >= limit:
                state["closed_at"] = time.time()

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    users = int(spec["users"])
    runner.start(users, spawn_rate=max(users, 1) * 1000.0)
    gevent.sleep(float(spec["warmup_s"]))
    metrics_before = _metrics_page(spec["host"], spec["headers"], spec.get("metrics_path"))
    window_start, cpu_start = time.time(), _cpu_seconds()
    state["measuring_from"] = window_start - started
    deadline = window_start + float(spec["duration_s"])
    while time.time() < deadline and state["closed_at"] is None:
        gevent.sleep(0.01)
    cpu_end = _cpu_seconds()
    stopped_by = "requests" if state["closed_at"] is not None else "duration"
    window_end = state["closed_at"] or time.time()
    metrics_after = _metrics_page(spec["host"], spec["headers"], spec.get("metrics_path"))
    runner.quit()
    return {
        "records": [r for r in records if r[0] + r[1] / 1e3 <= window_end - started],
        "window": [window_start - started, window_end - started],
        "cpu_seconds": cpu_end - cpu_start,
        "stopped_by": stopped_by,
        "users_spawned": users,
        "metrics": [metrics_before, metrics_after],  # server pages around the measured window
    }


def main(argv: list[str]) -> int:
    spec_path, out_path = argv
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    result = run(spec)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
