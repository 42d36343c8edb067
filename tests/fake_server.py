"""Helpers for testing the server and its clients without a real model.

- `FakeBackend`: deterministic rows from token ids (a hash per text), an optional gate that holds
  every batch until it opens (a threading.Event, or a file that appears), and a record of batches.
- `lifespan(app)`: run an ASGI app's startup/shutdown around in-process requests (httpx's
  ASGITransport does not run the lifespan protocol itself).
- `python -m tests.fake_server --port 0 [--gate FILE] ...`: a real server over a FakeBackend, for
  tests of signals, overload and draining on a real socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.serving.backends import Kind, ModelInfo, Tokenized


class FakeBackend:
    """Words -> ids (crc32 % 1000 + 10), rows that depend only on each row's own ids."""

    def __init__(
        self,
        kind: Kind = "embedding",
        dim: int = 8,
        max_length: int = 16,
        labels: Sequence[str] = ("neg", "pos"),
        gate: threading.Event | None = None,
        gate_file: Path | None = None,
        fail: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.info = ModelInfo(
            kind=kind,
            dim=len(labels) if kind == "classifier" else dim,
            max_length=max_length,
            platform="fake",
            device="cpu",
            providers=["FakeProvider"],
            labels=list(labels) if kind == "classifier" else [],
            source="fake",
        )
        self.gate = gate
        self.gate_file = gate_file
        self.fail = fail
        self.delay_s = delay_s  # per batch: a model with a finite capacity, for overload tests
        self.batches: list[list[list[int]]] = []  # every batch run, as token ids
        self.started = threading.Event()  # set when a batch has entered run()
        self.closed = False

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Tokenized:
        ids, cut = [], []
        for i, text in enumerate(texts):
            words = text.split() + ([] if pairs is None else ["[SEP]", *pairs[i].split()])
            row = [1] + [zlib.crc32(w.encode()) % 1000 + 10 for w in words] + [2]
            cut.append(len(row) > self.info.max_length)
            ids.append([*row[: self.info.max_length - 1], 2] if cut[-1] else row)
        return Tokenized(ids, cut)

    def run(self, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int] | None]) -> np.ndarray:
        self.batches.append([list(row) for row in ids])
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=60)
        if self.gate_file is not None:
            deadline = time.monotonic() + 60
            while not self.gate_file.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("the fake model failed on purpose")
        return np.stack([self.row(row) for row in ids])

    def row(self, ids: Sequence[int]) -> np.ndarray:
        """The row for one text, alone: what any batch must give back for it."""
        seed = zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes())
        vector = np.random.default_rng(seed).standard_normal(self.info.dim).astype(np.float32)
        return vector if self.info.kind == "classifier" else vector / np.linalg.norm(vector)

    def close(self) -> None:
        self.closed = True


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol: startup before the block, shutdown after it."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        return await to_app.get()

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    await to_app.put({"type": "lifespan.startup"})
    message = await from_app.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {message}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


def main(argv: Sequence[str] | None = None) -> None:
    from studentpack.serving.app import create_app
    from studentpack.serving.config import ServeConfig
    from studentpack.serving.runner import bind, serve

    parser = argparse.ArgumentParser(prog="python -m tests.fake_server", description="a real server over FakeBackend")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gate", type=Path, help="batches wait until this file exists")
    parser.add_argument("--max-queue", type=int, default=1024)
    parser.add_argument("--max-inputs", type=int, default=256)
    parser.add_argument("--grace-s", type=float, default=30.0)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--classifier", action="store_true", help="also serve a fake classifier, 'fake-classifier'")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="each batch takes this long (finite capacity)")
    parser.add_argument("--request-timeout-s", type=float, default=30.0)
    parser.add_argument("--metrics-out", type=Path, help="after shutdown, write the final /metrics page here")
    args = parser.parse_args(argv)
    config = ServeConfig(
        port=args.port,
        max_queue=args.max_queue,
        max_inputs=args.max_inputs,
        grace_s=args.grace_s,
        max_batch=args.max_batch,
        request_timeout_s=args.request_timeout_s,
        log_level="warning",
    )
    delay = args.delay_ms / 1000
    models: dict[str, FakeBackend] = {"fake": FakeBackend(gate_file=args.gate, delay_s=delay)}
    if args.classifier:
        models["fake-classifier"] = FakeBackend("classifier", gate_file=args.gate, delay_s=delay)
    app = create_app(models, config)
    serve(app, config, bind(config.host, config.port))
    if args.metrics_out:  # what the server answered, for tests that check no accepted request was lost
        args.metrics_out.write_bytes(app.state.metrics.render())


if __name__ == "__main__":
    main()
