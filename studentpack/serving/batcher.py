"""Dynamic batching for one model: queue texts from many requests, run them together, hand rows back.

Policy (one asyncio task per model, one inference thread per model):
- A batch holds at most `max_batch` items and at most `max_tokens` padded tokens (items x longest).
- When the model is idle and the last batch carried a single request (no sign of concurrent
  traffic), queued work runs at once: a lone client pays no batching delay.
- Otherwise the batch waits for companions until it is full, its oldest item has waited `max_wait`
  seconds, or no new request has arrived for `max_gap` seconds, whichever comes first. The gap rule
  stops a batch from waiting out `max_wait` for companions that are not coming: 4 closed-loop clients
  send their next requests together, and a fifth will not arrive until one of them is answered.
  The `max_wait` clock starts when the model is free: a request queued behind a running batch has
  waited for the model, not for companions.
- The queue is bounded (`max_queue` items): `submit` raises `QueueFull` at once when it is full.
- A request whose deadline passes before its rows run is failed with `DeadlineExceeded` and not computed.
- Each request's rows are sorted by length, so a large request is cut into batches with little padding.
- A batch of mixed lengths may run as a few length-sorted sub-batches (`length_split`) when that
  costs less than padding every row to the longest; `call_cost_tokens` 0 turns this off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from studentpack.serving.backends import Backend
from studentpack.serving.length_split import run_in_groups
from studentpack.serving.metrics import Metrics


class QueueFull(Exception):
    """The model's queue cannot take this request now."""


class DeadlineExceeded(Exception):
    """The request's deadline passed while it was still queued."""


class ShuttingDown(Exception):
    """The batcher was stopped before the request ran."""


@dataclass
class Result:
    rows: np.ndarray  # (N, dim) float32 in request order
    queue_s: float  # enqueue -> first batch started
    inference_s: float  # first batch started -> last batch finished


@dataclass(eq=False)
class _Job:
    ids: list[list[int]]  # sorted longest first
    types: list[list[int] | None]  # token type ids per row (None: all zeros)
    order: np.ndarray  # ids[i] is the request's text order[i]
    deadline: float
    future: asyncio.Future[Result]
    enqueued: float = field(default_factory=time.perf_counter)
    out: np.ndarray | None = None
    next_row: int = 0  # rows handed to a batch so far
    done_rows: int = 0
    started: float = 0.0
    timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> int:
        return len(self.ids) - self.next_row


@dataclass
class _Batch:
    parts: list[tuple[_Job, int, int]]  # (job, first row, end row)
    ids: list[list[int]]
    types: list[list[int] | None]


class Batcher:
    def __init__(
        self,
        name: str,
        backend: Backend,
        metrics: Metrics,
        *,
        max_batch: int,
        max_tokens: int,
        max_wait_s: float,
        max_queue: int,
        max_gap_s: float | None = None,
        call_cost_tokens: int = 0,
    ) -> None:
        self.name = name
        self.backend = backend
        self.series = metrics.model(name)
        self.max_batch = max_batch
        self.max_tokens = max(max_tokens, backend.info.max_length)  # one longest text always fits
        self.max_wait_s = max_wait_s
        self.max_gap_s = max_wait_s if max_gap_s is None else min(max_gap_s, max_wait_s)
        self.max_queue = max_queue
        self.call_cost_tokens = call_cost_tokens
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # rows waiting
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._task: asyncio.Task[None] | None = None
        self._expect_company = False
        self._running = 0  # batches in flight (0 or 1)
        self._free_since = 0.0  # when the last batch finished (perf_counter)

    # --- public -------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def busy(self) -> bool:
        return self._running > 0 or self._queued > 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Fail what is still queued, stop the loop, release the inference thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            _fail(job, ShuttingDown())
        self._jobs.clear()
        self._queued = 0
        self.series.queue_depth.set(0)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)  # a running batch ends
        self.backend.close()

    async def submit(
        self, ids: Sequence[Sequence[int]], timeout_s: float, types: Sequence[Sequence[int]] | None = None
    ) -> Result:
        """Queue one request's token ids (and type ids for pairs); the rows come back in request order."""
        if self._task is None or self._task.done():
            raise ShuttingDown()
        n = len(ids)
        if self._queued + n > self.max_queue:
            raise QueueFull()
        order = np.argsort([-len(row) for row in ids], kind="stable")
        loop = asyncio.get_running_loop()
        job = _Job(
            ids=[list(ids[i]) for i in order],
            types=[None] * n if types is None else [list(types[i]) for i in order],
            order=order,
            deadline=time.perf_counter() + timeout_s,
            future=loop.create_future(),
        )
        job.timer = loop.call_later(timeout_s, self._expire, job)
        self._jobs.append(job)
        self._queued += n
        self.series.queue_depth.set(self._queued)
        self._wake.set()
        try:
            return await job.future
        finally:
            job.timer.cancel()

    def _expire(self, job: _Job) -> None:
        """The deadline passed: a job none of whose rows has started is failed and leaves the queue."""
        if job.next_row == 0 and not job.future.done():
            self._jobs.remove(job)
            self._queued -= len(job.ids)
            job.next_row = len(job.ids)
            self.series.queue_depth.set(self._queued)
            _fail(job, DeadlineExceeded())

    # --- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_work()
            if self._expect_company:
                await self._wait_for_company()
            batch = self._take()
            if batch is None:
                continue
            n_jobs = len({id(job) for job, _, _ in batch.parts})
            start = time.perf_counter()
            for job, first, _ in batch.parts:
                if first == 0:
                    job.started = start
                    self.series.queue_seconds.observe(start - job.enqueued)
            self._running = 1
            self.series.running.set(1)
            try:
                rows = await loop.run_in_executor(
                    self._executor, run_in_groups, self.backend.run, batch.ids, batch.types, self.call_cost_tokens
                )
            except asyncio.CancelledError:  # stopped mid-batch: its requests are answered, not left waiting
                for job, _, _ in batch.parts:
                    _fail(job, ShuttingDown())
                raise
            except Exception as exc:  # a model failure fails its batch, never the server
                for job, _, _ in batch.parts:
                    _fail(job, exc)
                continue
            finally:
                self._running = 0
                self.series.running.set(0)
            end = self._free_since = time.perf_counter()
            self.series.inference_seconds.observe(end - start)
            self.series.batch_size.observe(len(batch.ids))
            self._deliver(batch, rows, end)
            # company is likely when this batch served several requests or others arrived meanwhile
            self._expect_company = n_jobs > 1 or bool(self._jobs)

    async def _wait_for_work(self) -> None:
        while not self._jobs:
            self._wake.clear()
            await self._wake.wait()

    async def _wait_for_company(self) -> None:
        """Wait until the batch is full or its oldest item has waited max_wait."""
        if not self._jobs:
            return
        # waiting for the model is not waiting for companions: the clock starts when the model is free
        until = max(self._jobs[0].enqueued, self._free_since) + self.max_wait_s
        while self._jobs and not self._full():
            remaining = until - time.perf_counter()
            if remaining <= 0:
                return
            self._wake.clear()
            try:  # the newest arrival restarts the gap: companions still coming keep the batch open
                await asyncio.wait_for(self._wake.wait(), min(remaining, self.max_gap_s))
            except TimeoutError:
                return

    def _full(self) -> bool:
        count, longest = 0, 0
        for job in self._jobs:
            for row in job.ids[job.next_row :]:
                longest = max(longest, len(row))
                count += 1
                if count >= self.max_batch or count * longest >= self.max_tokens:
                    return True
        return False

    def _take(self) -> _Batch | None:
        """Pop up to max_batch rows (and max_tokens padded tokens) in arrival order; expire late jobs."""
        now = time.perf_counter()
        parts: list[tuple[_Job, int, int]] = []
        ids: list[list[int]] = []
        types: list[list[int] | None] = []
        longest = 0
        while self._jobs and len(ids) < self.max_batch:
            job = self._jobs[0]
            if job.future.done() or job.deadline < now:  # cancelled by its client, or out of time
                self._drop(job, DeadlineExceeded())
                continue
            first = job.next_row
            end = first
            while end < len(job.ids) and len(ids) < self.max_batch:
                wider = max(longest, len(job.ids[end]))
                if ids and (len(ids) + 1) * wider > self.max_tokens:
                    break
                longest = wider
                ids.append(job.ids[end])
                types.append(job.types[end])
                end += 1
            if end == first:
                break  # the token budget is spent
            parts.append((job, first, end))
            job.next_row = end
            self._queued -= end - first
            if job.pending == 0:
                self._jobs.popleft()
            else:
                break  # budget or size reached inside this job
        self.series.queue_depth.set(self._queued)
        return _Batch(parts, ids, types) if ids else None

    def _drop(self, job: _Job, exc: Exception) -> None:
        self._jobs.popleft()
        self._queued -= job.pending
        job.next_row = len(job.ids)
        _fail(job, exc)

    def _deliver(self, batch: _Batch, rows: np.ndarray, end: float) -> None:
        offset = 0
        for job, first, stop in batch.parts:
            count = stop - first
            if not job.future.done():
                if job.out is None:
                    job.out = np.empty((len(job.ids), rows.shape[1]), dtype=np.float32)
                job.out[job.order[first:stop]] = rows[offset : offset + count]
                job.done_rows += count
                if job.done_rows == len(job.ids):
                    job.future.set_result(Result(job.out, job.started - job.enqueued, end - job.started))
            offset += count


def _fail(job: _Job, exc: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
