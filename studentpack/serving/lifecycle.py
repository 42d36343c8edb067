"""The server's life: load models in the background (not ready), serve (ready), drain (not ready), stop.

Models load one after another in a worker thread after the socket is open, so liveness answers at
once and readiness says 503 until every model is loaded. A model that fails to load makes the
server unready and calls `on_fatal(message)` (the CLI then exits 2 with that message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from studentpack.batch_invariance import INVARIANT_COSINE, is_invariant
from studentpack.ground.errors import UserError
from studentpack.serving.backends import Backend, ModelInfo
from studentpack.serving.batcher import Batcher
from studentpack.serving.config import ServeConfig
from studentpack.serving.metrics import Metrics

log = logging.getLogger("studentpack.serve")

Loader = Callable[[], Backend]
SlotState = Literal["loading", "ready", "failed"]


@dataclass(eq=False)
class ModelSlot:
    name: str
    loader: Loader | None
    backend: Backend | None = None
    batcher: Batcher | None = None
    state: SlotState = "loading"
    error: str = ""


class Lifecycle:
    def __init__(
        self,
        models: Mapping[str, Backend | Loader],
        config: ServeConfig,
        metrics: Metrics,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.on_fatal = on_fatal
        self.slots: dict[str, ModelSlot] = {}
        for name, model in models.items():
            if callable(model) and not hasattr(model, "info"):
                self.slots[name] = ModelSlot(name, model)
            else:
                self.slots[name] = ModelSlot(name, None, backend=model)  # type: ignore[arg-type]
            metrics.model(name)
        self.draining = False
        self.error = ""
        self._load_task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return not self.draining and all(slot.state == "ready" for slot in self.slots.values())

    @property
    def state(self) -> str:
        if self.draining:
            return "draining"
        if self.error:
            return "failed"
        return "ready" if self.ready else "loading"

    async def start(self) -> None:
        self._load_task = asyncio.get_running_loop().create_task(self._load_all(), name="load-models")

    async def wait_loaded(self) -> None:
        """For tests and tools: until every model is loaded or one failed."""
        if self._load_task is not None:
            await asyncio.shield(self._load_task)

    def begin_drain(self) -> None:
        if not self.draining:
            log.info("draining: readiness is 503, new requests are refused, in-flight ones finish")
        self.draining = True

    async def stop(self) -> None:
        self.draining = True
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._load_task
        for slot in self.slots.values():
            if slot.batcher is not None:
                await slot.batcher.stop()
            elif slot.backend is not None:
                slot.backend.close()

    async def _load_all(self) -> None:
        loop = asyncio.get_running_loop()
        for slot in self.slots.values():
            try:
                if slot.backend is None:
                    assert slot.loader is not None
                    log.info("loading %s", slot.name)
                    slot.backend = await loop.run_in_executor(None, slot.loader)
                self._batching(slot.name, slot.backend.info)
                slot.batcher = self._batcher(slot.name, slot.backend)
                slot.batcher.start()
                slot.state = "ready"
                info = slot.backend.info
                log.info("model %s ready (%s, %s, %s)", slot.name, info.kind, info.platform, ",".join(info.providers))
            except Exception as exc:  # the message goes to the operator; the server stops being ready
                slot.state = "failed"
                slot.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.error = f"model {slot.name}: {slot.error}"
                log.error("cannot load %s", self.error)
                if self.on_fatal is not None:
                    self.on_fatal(self.error)
                return

    def _batching(self, name: str, info: ModelInfo) -> None:
        """Batch a model only when a text's vector does not depend on its batch-mates (or when told to)."""
        if is_invariant(info.batch_cosine):
            return
        policy = self.config.batch_dependent
        why = (
            f"{name}'s vectors depend on their batch-mates (worst cosine {info.batch_cosine:.4f} < {INVARIANT_COSINE})"
        )
        if policy == "refuse":
            raise UserError(f"{why}; serve it with --batch-dependent per-text or batch")
        if policy == "per-text":
            info.batching = "per-text"
            log.info("%s: running it one text per call", why)
        else:
            info.batching = "batched (batch-dependent)"
            log.warning("%s: batching it anyway (--batch-dependent batch)", why)

    def _batcher(self, name: str, backend: Backend) -> Batcher:
        c = self.config
        return Batcher(
            name,
            backend,
            self.metrics,
            max_batch=1 if backend.info.batching == "per-text" else c.max_batch,
            max_tokens=c.max_batch_tokens or c.max_batch * backend.info.max_length,
            max_wait_s=c.max_wait_ms / 1000.0,
            max_queue=c.max_queue,
            max_gap_s=c.max_gap_ms / 1000.0,
            call_cost_tokens=c.call_cost_tokens,
        )
