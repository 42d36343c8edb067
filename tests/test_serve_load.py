"""The server past its capacity and under SIGTERM, on a real loopback socket (a fake model with a fixed
time per batch gives it a known, small capacity). Bounded: a few seconds of load, one server each."""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from tests.fake_server import FakeBackend
from tests.test_serve_e2e import start

CLIENTS = 48
LOAD_S = 4.0


@dataclass
class Answer:
    status: int
    texts: list[str]
    body: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def hammer(url: str, stop: threading.Event, worker: int, answers: list[Answer], errors: list[str]) -> None:
    """Send requests back to back until `stop`, or until the server stops taking connections."""
    with httpx.Client(timeout=60) as client:
        for i in range(100_000):
            if stop.is_set():
                return
            texts = [f"w{worker} r{i} t{j}" for j in range(1 + i % 3)]
            started = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/embeddings", json={"model": "fake", "input": texts})
            except httpx.TransportError as exc:  # refused or closed: the server had not taken the request
                errors.append(type(exc).__name__)
                return
            try:
                body = response.json()
            except ValueError:  # not JSON: kept, so the status check names it
                body = {"not_json": response.text[:200]}
            answers.append(Answer(response.status_code, texts, body, dict(response.headers),
                                  time.perf_counter() - started))  # fmt: skip


def run_load(url: str, seconds: float, during: threading.Event | None = None) -> tuple[list[Answer], list[str]]:
    answers: list[Answer] = []
    errors: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=hammer, args=(url, stop, w, answers, errors)) for w in range(CLIENTS)]
    for thread in threads:
        thread.start()
    (during or threading.Event()).wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
    return answers, errors


def check_rows(answers: list[Answer]) -> None:
    """Every 200 holds, for each of its texts, the row the model gives that text alone."""
    model = FakeBackend()
    for answer in (a for a in answers if a.status == 200):
        rows = np.asarray([d["embedding"] for d in answer.body["data"]], dtype=np.float32)  # type: ignore[index,union-attr]
        expected = np.stack([model.row(ids) for ids in model.tokenize(answer.texts).ids])
        np.testing.assert_allclose(rows, expected, rtol=1e-6)


def metric(page: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in page.splitlines():
        match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_overload_sheds_load_fast_and_recovers(capsys: object) -> None:
    server = start([sys.executable, "-m", "tests.fake_server", "--delay-ms", "20", "--max-batch", "4",
                    "--max-queue", "16", "--max-inputs", "4", "--request-timeout-s", "2"])  # fmt: skip
    try:
        answers, errors = run_load(server.url, LOAD_S)
        assert not errors
        statuses = {a.status for a in answers}
        assert statuses == {200, 503}, statuses  # past capacity: some served, the rest refused, nothing else
        refused = [a for a in answers if a.status == 503]
        for answer in refused:
            assert answer.headers["retry-after"] == "1"
            assert answer.body["error"]["code"] in ("overloaded", "deadline_exceeded")  # type: ignore[index]
        check_rows(answers)
        served = [a for a in answers if a.status == 200]
        # the server's own promise: nothing it answers 200 waited in its queue past request_timeout_s
        assert max(float(a.headers["x-queue-time-ms"]) for a in served) <= 2000
        # recovery: the queue drains to zero and every request is served again
        with httpx.Client(timeout=60) as client:
            for _ in range(200):
                page = client.get(f"{server.url}/metrics").text
                if metric(page, "studentpack_queue_depth") == 0 and metric(page, "studentpack_inflight_requests") <= 1:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the queue never drained")
            after = [client.post(f"{server.url}/v1/embeddings", json={"model": "fake", "input": f"after {i}"})
                     for i in range(20)]  # fmt: skip
        assert [r.status_code for r in after] == [200] * 20
        p50 = {s: float(np.median([a.seconds for a in answers if a.status == s])) * 1000 for s in (200, 503)}
        print(
            f"\noverload: {len(answers)} requests, {CLIENTS} clients, {LOAD_S:g} s: {len(served)} served, "
            f"{len(refused)} refused 503; client p50 {p50[200]:.1f} ms served, {p50[503]:.1f} ms refused"
        )
    finally:
        server.stop()


def test_sigterm_under_load_loses_no_accepted_request(tmp_path: Path) -> None:
    final_metrics = tmp_path / "metrics.txt"
    server = start([sys.executable, "-m", "tests.fake_server", "--delay-ms", "10", "--max-batch", "8",
                    "--max-queue", "512", "--grace-s", "30", "--metrics-out", str(final_metrics)])  # fmt: skip
    try:
        killer = threading.Timer(1.5, lambda: server.process.send_signal(signal.SIGTERM))
        killer.start()
        exited = threading.Event()
        threading.Thread(target=lambda: (server.process.wait(120), exited.set()), daemon=True).start()
        answers, errors = run_load(server.url, 60, during=exited)  # until the server is gone
        assert server.process.wait(60) == 0, "".join(server.log)
    finally:
        server.stop()
    statuses = {a.status for a in answers}
    assert statuses <= {200, 503} and 200 in statuses, statuses
    for answer in (a for a in answers if a.status == 503):
        assert answer.body["error"]["code"] == "shutting_down"  # type: ignore[index]
    check_rows(answers)
    page = final_metrics.read_text()
    served = [a for a in answers if a.status == 200]
    # every 200 the server produced reached its client, and the model ran no text nobody got back
    assert metric(page, "studentpack_requests_total", endpoint="embeddings", status="200") == len(served)
    assert metric(page, "studentpack_texts_total", model="fake") == sum(len(a.texts) for a in served)
    print(f"\nSIGTERM under load: {len(served)} requests served, "
          f"{sum(a.status == 503 for a in answers)} refused while draining, {len(errors)} clients then found the "
          "socket closed; server and clients agree on every answer")  # fmt: skip
