"""Comparing the report's rows on one device: speed-ups over the baseline, the frontier, the headline.

Rows are compared on p50 at one concurrency level, the baseline's. The baseline is the teacher's PyTorch
directory served by `studentpack serve` (what a user deploys without this toolkit); speed-ups are its p50
over the row's, and the row's best throughput over its best. The frontier is the rows no other row beats
on both score and p50. Files load-tested behind several servers also get a side-by-side entry.
"""

from __future__ import annotations

from typing import Any

from studentpack.bench.report_rows import Row
from studentpack.ground.numbers import ratio

SAME_SPEED = 1.05  # p50s within 5% of the fastest count as equally fast in the headline


def _baseline(rows: list[Row]) -> Row | None:
    return next((r for r in rows if r.role == "teacher" and r.model.variant == "torch" and r.server == "studentpack"
                 and r.latency), None)  # fmt: skip


def compare_at_one_level(rows: list[Row]) -> int | None:
    """The concurrency level every comparison uses: the baseline's lowest, else the lowest most rows share.
    Each row's p50 there becomes `compared_p50`; a row not tested at that level is left out of comparisons."""
    baseline = _baseline(rows)
    lowest = [r.latency_users for r in rows if r.latency_users is not None]
    if baseline is not None:
        users = baseline.latency_users
    elif lowest:
        users = max(sorted(set(lowest)), key=lowest.count)
    else:
        return None
    for row in rows:
        level = next((lv for lv in row.levels if lv["users"] == users), None)
        row.compared_p50 = level["p50"] if level else None
    return users


def set_speedups(rows: list[Row]) -> None:
    baseline = _baseline(rows)
    if baseline is None or baseline.compared_p50 is None:
        return
    baseline.baseline = True
    for row in rows:
        if row.compared_p50:
            row.speedup_p50 = round(baseline.compared_p50 / row.compared_p50, 2)
        if row.best and baseline.best:
            row.speedup_throughput = round(row.best["texts_per_s"] / baseline.best["texts_per_s"], 2)


def side_by_side(rows: list[Row]) -> list[dict[str, Any]]:
    """Files load-tested behind several servers on one device: per level, each server's figures."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.levels:
            groups.setdefault((row.model.sha256, row.device), []).append(row)
    entries = []
    for (_, device), members in groups.items():
        if len({m.server for m in members}) < 2:
            continue
        ours = next((m for m in members if m.server == "studentpack"), None)
        entry: dict[str, Any] = {
            "model": f"{members[0].model.run} {members[0].model.variant}",
            "device": device,
            "servers": {
                m.server: m.levels for m in sorted(members, key=lambda m: (m.server != "studentpack", m.server))
            },
            "ratios": {},
        }
        if ours is not None:
            by_users = {lv["users"]: lv for lv in ours.levels}
            for other in (m for m in members if m is not ours):
                entry["ratios"][other.server] = [
                    {
                        "users": lv["users"],
                        # a zero figure is no measurement: no ratio from it
                        "throughput_studentpack_over_other": ratio(
                            by_users[lv["users"]]["texts_per_s"] or None, lv["texts_per_s"], 3
                        ),
                        "p50_other_over_studentpack": ratio(lv.get("p50") or None, by_users[lv["users"]].get("p50"), 3),
                    }
                    for lv in other.levels
                    if lv["users"] in by_users
                ]
        entries.append(entry)
    return entries


def mark_frontier(rows: list[Row]) -> None:
    """Rows no other row beats on both score and p50 at the comparison level."""
    points = [(r, r.compared_p50, r.score) for r in rows if r.score is not None and r.compared_p50 is not None]
    for row, p50, score in points:
        row.frontier = not any(
            other is not row and o_p50 <= p50 and o_score >= score and (o_p50 < p50 or o_score > score)
            for other, o_p50, o_score in points
        )


def headline(rows: list[Row], score: dict[str, Any], users: int | None) -> dict[str, Any] | None:
    """The fastest student (p50 at the comparison level) that reaches the target on every labelled metric
    (or on the label-free recall), against the baseline; the most accurate when none does."""
    baseline = next((r for r in rows if r.baseline), None)
    students = [r for r in rows if r.role == "student" and r.score is not None and r.compared_p50 is not None]
    if not students:
        return None
    target = score.get("target")
    keeping = [r for r in students if target is not None and (r.floor or 0) >= target]
    if keeping:
        fastest = min(r.compared_p50 or 0.0 for r in keeping)
        # students of one shape serve at the same speed: differences inside SAME_SPEED are noise, so among
        # the rows that fast the more accurate one is named
        level = [r for r in keeping if (r.compared_p50 or 0.0) <= fastest * SAME_SPEED]
        best = max(level, key=lambda r: r.score or 0.0)
    else:
        best = max(students, key=lambda r: r.score or 0.0)
    return {
        "row": best.name,
        "meets_accuracy_target": bool(keeping),
        "score": best.score,
        "score_floor": best.floor,
        "pct_of_teacher": {
            m: best.metrics[m].get("pct_of_teacher")
            for m in score.get("metrics") or []
            if m in best.metrics and score.get("kind") == "pct_of_teacher"
        },
        "score_kind": score.get("kind"),
        "score_label": score.get("label"),
        "target": target,
        "p50_ms": best.compared_p50,
        "users": users,
        "baseline": baseline.name if baseline else None,
        "baseline_p50_ms": baseline.compared_p50 if baseline else None,
        "speedup_p50": best.speedup_p50,
        "speedup_throughput": best.speedup_throughput,
        "cpu_class": best.cpu_class,
    }
