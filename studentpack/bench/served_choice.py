"""Which exported variant the pipeline serves for a model: the fastest, here, of those that passed their gate.

The choice reads each accepted variant's export.json `speed` block (export/speed.py: every accepted
variant timed on this machine, interleaved over rounds) on one shape, "text" by default: one text at a
time, which is what a served p50 at concurrency 1 is made of. Precision and runtime do not enter into it:
on an AVX-512 VNNI CPU ONNX Runtime's INT8 won, on an AVX2 CPU without VNNI the same student's
int8-dynamic still won while OpenVINO's INT8 ran slower than ONNX Runtime's fp32 (../shared/notes/cpus.md);
a rejected variant is never a candidate, because it has no export.json under onnx/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Choice:
    variant: str | None
    times_ms: dict[str, float]  # candidate -> its median on the shape (those the trial timed)
    why: str


def fastest_accepted(records: dict[str, dict[str, Any]], shape: str = "text") -> Choice:
    """The accepted variant with the lowest median on `shape` in its speed block.

    `records`: variant -> its export.json, for accepted variants only. With one variant there was no
    trial and it is the choice; without any timing for several, the first is, and `why` says so.
    """
    accepted = [name for name, record in records.items() if record.get("status", "accepted") == "accepted"]
    if not accepted:
        return Choice(None, {}, "no variant passed its gate")
    times = {
        name: float(records[name]["speed"]["median_ms"][shape])
        for name in accepted
        if shape in ((records[name].get("speed") or {}).get("median_ms") or {})
    }
    if len(accepted) == 1:
        return Choice(accepted[0], times, "the only variant that passed its gate")
    if not times:
        return Choice(accepted[0], times, "no speed trial ran: the first accepted variant")
    chosen = min(times, key=lambda name: times[name])
    others = ", ".join(f"{name} {times[name]:.2f} ms" for name in sorted(times, key=lambda n: times[n])[1:])
    return Choice(chosen, times, f"fastest on one text at a time in the export's trial: {times[chosen]:.2f} ms"
                                 + (f" ({others})" if others else ""))  # fmt: skip
