"""How the pipeline runs one unit of work: skipped when its inputs and artifact are unchanged, otherwise run,
timed and marked in the ledger; a failure is recorded and reported, and the other units go on."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studentpack.bench.stages import ChildFailed, Clock, Ledger, fingerprint
from studentpack.ground.errors import UserError


@dataclass
class Outcome:
    failures: dict[str, str] = field(default_factory=dict)  # unit -> reason
    notes: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    seconds: float = 0.0


@dataclass
class Units:
    out: Path
    force: bool
    say: Callable[[str], None]
    ledger: Ledger
    clock: Clock
    outcome: Outcome

    def run(self, unit: str, label: str, inputs: Any, artifact: Path | None, work: Callable[[], None]) -> bool:
        """Run `work` unless fresh; a failure is recorded and reported, never raised. True when done."""
        fp = fingerprint(inputs)
        if not self.force and self.ledger.fresh(unit, fp, artifact):
            self.clock.skip(unit, label)
            return True
        self.clock.begin(unit, label)
        try:
            work()
        except (UserError, ChildFailed) as exc:
            return self._failed(unit, fp, label, str(exc))
        except Exception as exc:  # a bug in one unit must not lose the others' results
            trace = traceback.format_exc(limit=4)
            return self._failed(unit, fp, label, f"{type(exc).__name__}: {exc}\n{trace}")
        self.ledger.mark(unit, fp, "done", self.clock.end(unit))
        return True

    def _failed(self, unit: str, fp: str, label: str, reason: str) -> bool:
        seconds = self.clock.end(unit)
        self.ledger.mark(unit, fp, "failed", seconds, reason.splitlines()[0])
        self.outcome.failures[unit] = reason.splitlines()[0]
        self.say(f"FAILED {label}: {reason.strip()}")
        return False

    def log(self, name: str) -> Path:
        """Where a unit's child command (or the server) writes its output."""
        return self.out / "logs" / f"{name}.log"
