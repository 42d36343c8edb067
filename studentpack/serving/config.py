"""ServeConfig: every knob of the server, as one frozen dataclass (built from flags, `--config` and `--set`)."""

from __future__ import annotations

from dataclasses import dataclass

from studentpack.ground.errors import UserError
from studentpack.serving.length_split import CPU_CALL_COST_TOKENS

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
BATCH_DEPENDENT = ("per-text", "batch", "refuse")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback unless the user says otherwise
    port: int = 8000  # 0: any free port (the chosen one is printed)
    device: str = "cpu"  # cpu | cuda | cuda:N; cuda never falls back to the CPU
    threads: int = 0  # intra-op threads per model; 0: the runtime's default
    spin: bool = False  # let idle onnxruntime threads busy-wait: for dedicated cores only (steals CPU otherwise)
    # keep the runtime's memory at its largest batch's peak (a little faster on large batches) instead of
    # handing it back after each batch: resident memory is what many small replicas pay for
    keep_memory: bool = False
    max_length: int = 128  # tokens per text (capped at the model's own maximum)
    max_batch: int = 32  # items (texts) per batch
    max_batch_tokens: int = 0  # padded tokens per batch (items x longest); 0: max_batch * max_length
    max_wait_ms: float = 5.0  # the longest a request waits for companions before its batch runs
    max_gap_ms: float = 1.0  # a batch that is not full runs once no request has arrived for this long
    split_cost_tokens: int = -1  # a sub-batch's fixed cost in padded tokens; 0: never split; -1: 64 on CPU, 0 on GPU
    # a model whose vectors depend on their batch-mates (batch_invariance.py): "per-text" runs it one text
    # per call (the same text always gets the same vector), "batch" batches it anyway, "refuse" does not load it
    batch_dependent: str = "per-text"
    max_queue: int = 1024  # queued items per model; beyond it: 503 + Retry-After at once
    max_inputs: int = 256  # texts per request
    max_body_bytes: int = 2 * 1024 * 1024
    request_timeout_s: float = 30.0  # a request still queued after this is answered 503 and not computed
    grace_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    access_log: bool = False
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"port {self.port} is out of range (0-65535)")
        if not (self.device in ("cpu", "cuda") or self.device.startswith("cuda:")):
            raise UserError(f"device {self.device!r}: use cpu, cuda or cuda:N")
        positive = ("max_length", "max_batch", "max_queue", "max_inputs", "max_body_bytes")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("threads", "max_batch_tokens", "max_wait_ms", "max_gap_ms"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.batch_dependent not in BATCH_DEPENDENT:
            raise UserError(
                f"batch_dependent must be one of {', '.join(BATCH_DEPENDENT)}, got {self.batch_dependent!r}"
            )
        if self.split_cost_tokens < -1:
            raise UserError(f"split_cost_tokens must be -1 (auto), 0 (off) or positive, got {self.split_cost_tokens}")
        if self.request_timeout_s <= 0 or self.grace_s < 0:
            raise UserError("request_timeout_s must be positive and grace_s not negative")
        if self.max_inputs > self.max_queue:
            raise UserError(f"max_inputs ({self.max_inputs}) cannot exceed max_queue ({self.max_queue})")
        if self.log_level not in LOG_LEVELS:
            raise UserError(f"log_level {self.log_level!r}: use one of {', '.join(LOG_LEVELS)}")

    @property
    def call_cost_tokens(self) -> int:
        """The batcher's sub-batch cost: on a GPU a call costs far more than padding, so auto is off there."""
        if self.split_cost_tokens >= 0:
            return self.split_cost_tokens
        return CPU_CALL_COST_TOKENS if self.device == "cpu" else 0
