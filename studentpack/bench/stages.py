"""Bookkeeping for a multi-stage run: which units are done for which inputs, how long is left, child CLIs.

- `Ledger` (pipeline.json): per unit, the fingerprint of its inputs and its status. A unit whose
  artifact is complete and whose fingerprint is unchanged is skipped on a re-run.
- `Clock`: the stage line with elapsed time and an ETA from a cost model, rescaled by how the
  finished units compared with their estimates.
- `run_cli`: a `studentpack <verb>` child whose output goes to the terminal and to a log file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studentpack.ground import atomic

LEDGER_SCHEMA = "studentpack.pipeline/1"


def fingerprint(inputs: Any) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:32]


class Ledger:
    """pipeline.json: {unit: {fingerprint, status (started|done|failed), seconds, error, finished}}, plus
    named sections (the budget plan) that a re-run reads back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.units: dict[str, dict[str, Any]] = {}
        self.sections: dict[str, Any] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("schema") == LEDGER_SCHEMA:
                    self.units = dict(data.get("units") or {})
                    self.sections = {k: v for k, v in data.items() if k not in ("schema", "units")}
            except (OSError, ValueError, AttributeError):
                self.units, self.sections = {}, {}  # an unreadable ledger only costs re-running work

    def set_section(self, name: str, value: Any) -> None:
        self.sections[name] = value
        self._write()

    def _write(self) -> None:
        atomic.write_json(self.path, {"schema": LEDGER_SCHEMA, "units": self.units, **self.sections})

    def fresh(self, unit: str, inputs: str, artifact: Path | None) -> bool:
        entry = self.units.get(unit) or {}
        complete = artifact is None or artifact.exists()
        return entry.get("status") == "done" and entry.get("fingerprint") == inputs and complete

    def started_with(self, unit: str, inputs: str) -> bool:
        entry = self.units.get(unit) or {}
        return entry.get("status") in ("started", "failed") and entry.get("fingerprint") == inputs

    def mark(self, unit: str, inputs: str, status: str, seconds: float = 0.0, error: str = "", **extra: Any) -> None:
        self.units[unit] = {
            "fingerprint": inputs,
            "status": status,
            "seconds": round(seconds, 1),
            "error": error or None,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            **extra,
        }
        self._write()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class Clock:
    """Elapsed time and an ETA over a list of (unit, estimated seconds)."""

    estimates: dict[str, float]
    say: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    actual: dict[str, float] = field(default_factory=dict)  # finished units (not skipped)
    skipped: set[str] = field(default_factory=set)
    current: str | None = None
    current_start: float = 0.0

    def scale(self) -> float:
        done = [u for u in self.actual if self.estimates.get(u)]
        if not done:
            return 1.0
        ratio = sum(self.actual[u] for u in done) / sum(self.estimates[u] for u in done)
        return min(max(ratio, 0.3), 3.0)

    def remaining(self) -> float:
        pending = [u for u in self.estimates if u not in self.actual and u not in self.skipped and u != self.current]
        left = sum(self.estimates[u] for u in pending)
        if self.current is not None:
            left += max(self.estimates.get(self.current, 0.0) - (time.monotonic() - self.current_start), 0.0)
        return left * self.scale()

    def begin(self, unit: str, label: str) -> None:
        self.current, self.current_start = unit, time.monotonic()
        position = list(self.estimates).index(unit) + 1 if unit in self.estimates else 0
        elapsed, left = _clock(time.monotonic() - self.started), _clock(self.remaining())
        self.say(f"[{position}/{len(self.estimates)}] {label} | {elapsed} elapsed, about {left} left")

    def rename(self, old: str, new: str) -> None:
        """A planned unit turned out to be another (the INT8 variant chosen after export): same place, same estimate."""
        if old in self.estimates and new not in self.estimates:
            self.estimates = {new if u == old else u: seconds for u, seconds in self.estimates.items()}

    def end(self, unit: str) -> float:
        seconds = time.monotonic() - self.current_start
        self.actual[unit] = seconds
        self.current = None
        return seconds

    def skip(self, unit: str, label: str) -> None:
        self.skipped.add(unit)
        self.say(f"skip {label} (complete, inputs unchanged)")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class ChildFailed(Exception):
    """A child command exited non-zero: `message` is its last error line."""


def run_cli(args: list[str], log_path: Path, echo: bool = True) -> int:
    """`python -m studentpack ARGS`; output shown live (when `echo`) and kept in `log_path`.

    Returns the exit code; raises ChildFailed with the child's error line when the code is 2 or more
    (1 is left to the caller: export uses it for "some variant was rejected").
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "studentpack", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        tail = bytearray()

        def pump() -> None:
            assert proc.stdout is not None
            while chunk := proc.stdout.read1(4096):  # type: ignore[attr-defined]
                log.write(chunk)
                tail.extend(chunk)
                del tail[:-8192]
                if echo:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        code = proc.wait()
        reader.join()
        proc.stdout.close()
    if code >= 2 or code < 0:
        raise ChildFailed(_error_line(tail.decode("utf-8", "replace"), code, log_path))
    return code


def _error_line(text: str, code: int, log_path: Path) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if ": error:" in line or line.startswith(("Traceback", "RuntimeError"))]
    last = (errors or lines or ["no output"])[-1]
    return f"exit code {code}: {last} (log: {log_path})"
