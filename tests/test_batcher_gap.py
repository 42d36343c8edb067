"""The batcher's arrival-gap rule: a batch that is not full stops waiting for companions once none has
arrived for `max_gap`, and companions that keep arriving inside the gap still join it."""

from __future__ import annotations

import asyncio

from studentpack.serving.batcher import Batcher
from studentpack.serving.metrics import Metrics
from tests.fake_server import FakeBackend

BOUND_S = 20.0  # far below max_wait in these tests: reaching it means the batch waited max_wait out


def _batcher(backend: FakeBackend, max_gap_s: float) -> Batcher:
    return Batcher("m", backend, Metrics(), max_batch=32, max_tokens=32 * 16, max_wait_s=600.0, max_queue=64,
                   max_gap_s=max_gap_s)  # fmt: skip


async def _company_expected(batcher: Batcher, backend: FakeBackend) -> None:
    """Two requests in one batch: the batcher now expects company and waits for it."""
    ids = backend.tokenize(["a b", "c d"]).ids
    await asyncio.gather(batcher.submit([ids[0]], 60), batcher.submit([ids[1]], 60))
    assert batcher._expect_company


def test_a_lone_request_does_not_wait_out_max_wait() -> None:
    backend = FakeBackend()

    async def scenario() -> None:
        batcher = _batcher(backend, max_gap_s=0.05)
        batcher.start()
        await _company_expected(batcher, backend)
        # nobody else comes: without the gap rule this waits the full 600 s of max_wait
        await asyncio.wait_for(batcher.submit(backend.tokenize(["alone"]).ids, 900), BOUND_S)
        await batcher.stop()

    asyncio.run(scenario())
    assert [len(b) for b in backend.batches] == [2, 1]


def test_companions_arriving_inside_the_gap_join_the_batch() -> None:
    backend = FakeBackend()

    async def scenario() -> None:
        batcher = _batcher(backend, max_gap_s=1.0)
        batcher.start()
        await _company_expected(batcher, backend)
        jobs = []
        for i in range(6):  # arrivals 20 ms apart, well inside the 1 s gap
            jobs.append(asyncio.ensure_future(batcher.submit(backend.tokenize([f"t{i}"]).ids, 900)))
            await asyncio.sleep(0.02)
        # the sixth arrival's gap then runs out and the batch of six runs (max_wait is 600 s)
        await asyncio.wait_for(asyncio.gather(*jobs), BOUND_S)
        await batcher.stop()

    asyncio.run(scenario())
    assert [len(b) for b in backend.batches] == [2, 6]


def test_waiting_for_the_model_is_not_waiting_for_companions() -> None:
    """A request queued behind a running batch still gets its companion wait once the model is free:
    a companion arriving right after that batch joins it instead of running alone."""
    import threading

    gate = threading.Event()
    backend = FakeBackend()

    async def scenario() -> None:
        batcher = Batcher("m", backend, Metrics(), max_batch=32, max_tokens=32 * 16, max_wait_s=1.0, max_queue=64,
                          max_gap_s=0.5)  # fmt: skip
        batcher.start()
        await _company_expected(batcher, backend)
        backend.gate = gate  # the next batch holds the model until the gate opens
        first = asyncio.ensure_future(batcher.submit(backend.tokenize(["held"]).ids, 900))
        await asyncio.sleep(0.8)  # "held" has waited out its 0.5 s gap and is running
        queued = asyncio.ensure_future(batcher.submit(backend.tokenize(["queued"]).ids, 900))
        await asyncio.sleep(1.5)  # the queued request has now waited longer than max_wait, for the model
        gate.set()
        await first
        await asyncio.sleep(0.05)
        companion = asyncio.ensure_future(batcher.submit(backend.tokenize(["companion"]).ids, 900))
        await asyncio.wait_for(asyncio.gather(queued, companion), BOUND_S)
        await batcher.stop()

    asyncio.run(scenario())
    assert [len(b) for b in backend.batches] == [2, 1, 2]
