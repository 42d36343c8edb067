"""CPU pinning for a server and its load generator, so that on a machine with cores to spare they
do not compete for the same ones (Linux; elsewhere pinning is refused with a clear error)."""

from __future__ import annotations

import os

from studentpack.ground.errors import UserError


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """'0', '2,3' or '0-3' -> CPU ids (sorted, unique)."""
    ids: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            ids.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise UserError(f"CPU list {text!r}: give ids like 0, 2,3 or 0-3") from None
    if not ids:
        raise UserError(f"CPU list {text!r} names no CPU")
    return tuple(sorted(ids))


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def check_cpus(ids: tuple[int, ...], flag: str) -> None:
    if not hasattr(os, "sched_setaffinity"):
        raise UserError(f"{flag}: CPU pinning needs Linux")
    missing = sorted(set(ids) - set(usable_cpus()))
    if missing:
        raise UserError(f"{flag} {list(ids)}: {missing} are not CPUs this process may use ({usable_cpus()})")


def pin_process(ids: tuple[int, ...], flag: str) -> None:
    """Pin this process (and the threads it starts later) to `ids`."""
    check_cpus(ids, flag)
    os.sched_setaffinity(0, set(ids))


def split_for_load_test() -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(server CPUs, client CPUs) when there are at least 4 usable CPUs: the client gets one, the server
    the rest; None on smaller machines, where splitting would starve the server."""
    cpus = usable_cpus()
    if len(cpus) < 4:
        return None
    return tuple(cpus[:-1]), (cpus[-1],)
