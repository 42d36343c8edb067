"""pareto.svg: headline accuracy against served p50 latency, one panel per device, frontier drawn.

Drawn with our own SVG primitives (studentpack.bench.svg): the report needs no plotting library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from studentpack.bench import svg

PLOT_FILE = "pareto.svg"

_COLORS = {"teacher": "#444444", "mha": "#1f77b4", "hs": "#2ca02c", "od": "#d62728", "static": "#ff7f0e"}
_MARKERS = {"torch": "o", "fp32": "s", "fused": "D", "int8-dynamic": "^", "int8-static": "v", "fp16": "P",
            "openvino": "X", "openvino-int8": "<", "static": "p"}  # fmt: skip
_PANEL_WIDTH, _PANEL_HEIGHT = 750, 560  # pixels
_MARGINS = (90, 36, 20, 60)  # left, top, right, bottom: room for the titles and tick labels
_TEXT_SIZE = 11  # point labels, tick labels and the legend
_ROW_SIZE = 7.0  # a marker's radius; the baseline's star is larger
# label offsets (dx, dy) tried in order, y downwards: right, left, above, below, the diagonals, further out
_OFFSETS = [(10, 6), (-10, 6), (0, -13), (0, 19), (10, -10), (-10, -10), (10, 19), (-10, 19),
            (19, -22), (-19, -22), (19, 33), (-19, 33), (0, -31), (0, 39)]  # fmt: skip

Box = tuple[float, float, float, float]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class _Axes:
    """One panel's plotting area and the ranges it shows: latency on a log scale, score on a linear one."""

    box: Box
    latency: tuple[float, float]
    score: tuple[float, float]

    def x(self, latency: float) -> float:
        low, high = math.log(self.latency[0]), math.log(self.latency[1])
        return self.box[0] + (math.log(latency) - low) / (high - low) * (self.box[2] - self.box[0])

    def y(self, score: float) -> float:
        low, high = self.score
        return self.box[3] - (score - low) / (high - low) * (self.box[3] - self.box[1])


def plot(report: dict[str, Any]) -> bytes:
    """The SVG document's bytes (the caller writes them atomically)."""
    devices = [d for d in report["devices"] if _points(report, d)] or report["devices"][:1] or ["none"]
    parts = [part for i, device in enumerate(devices) for part in _panel(report, device, i * _PANEL_WIDTH)]
    return svg.document(_PANEL_WIDTH * len(devices), _PANEL_HEIGHT, parts)


def _points(report: dict[str, Any], device: str) -> list[dict[str, Any]]:
    return [r for r in report["rows"] if r["device"] == device and r["score"] is not None and r["compared_p50_ms"]]


def _panel(report: dict[str, Any], device: str, offset: float) -> list[str]:
    points = _points(report, device)
    score = report.get("score") or {}
    left, top, right, bottom = _MARGINS
    box = (offset + left, top, offset + _PANEL_WIDTH - right, _PANEL_HEIGHT - bottom)
    parts = _titles(box, device, (report.get("compared_users") or {}).get(device), score)
    if not points:
        middle = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        return [
            *parts,
            svg.text(*middle, "no row with both accuracy and latency", 12, "middle"),
            svg.rect(box, "black"),
        ]
    xs = [r["compared_p50_ms"] for r in points]
    ys = [r["score"] for r in points]
    target = score.get("target")
    low = min([*ys, target] if target is not None else ys)  # the target line stays inside
    high = max(*ys, 100.0)
    span = high - low or 1.0
    axes = _Axes(box, (min(xs) / 1.4, max(xs) * 1.4), (low - 0.08 * span, high + 0.1 * span))
    baseline = next((r for r in points if r["baseline"]), None)
    steps = _frontier(axes, points)
    legend_box, legend = _legend(axes, points)
    # what labels should not cover besides markers: the legend, the frontier and the horizontal lines
    avoid = [legend_box, *(_around(a, b) for a, b in pairwise(steps))]
    avoid += [_around((box[0], axes.y(v)), (box[2], axes.y(v))) for v in (100.0, target) if v is not None]
    return [
        *parts,
        *_grid(axes),
        *_reference_lines(axes, target, baseline),
        *([svg.polyline(steps, "black", 1.0, opacity=0.6)] if steps else []),
        *(_marker(axes, r) for r in points),
        *_labels(axes, points, avoid),
        *legend,
        svg.rect(box, "black"),
    ]


def _titles(box: Box, device: str, users: int | None, score: dict[str, Any]) -> list[str]:
    left, top, right, bottom = box
    axis = {"pct_of_teacher": "% of the teacher\n(" + " + ".join(score.get("metrics") or []) + ")",
            "label_free": "recall@10 of the teacher's neighbours (%)\nheld-out English, no labels"}  # fmt: skip
    lines = axis.get(score.get("kind") or "", "score").split("\n")
    parts = [
        svg.text((left + right) / 2, top - 18, f"{device}: accuracy vs served latency", 14, "middle"),
        svg.text((left + right) / 2, bottom + 42, f"served p50 latency at concurrency {users} (ms, log scale)", 12,
                 "middle"),
    ]  # fmt: skip
    for i, line in enumerate(lines):  # the last line nearest the axis
        parts.append(
            svg.text(left - 62 - 15 * (len(lines) - 1 - i), (top + bottom) / 2, line, 12, "middle", rotate=True)
        )
    return parts


def _grid(axes: _Axes) -> list[str]:
    """Grid lines, ticks and plain tick labels (2, 5, 10, 20, not 10^1) on both axes."""
    left, top, right, bottom = axes.box
    parts = []
    for value in _log_ticks(*axes.latency):
        x = axes.x(value)
        parts += [svg.line(x, top, x, bottom, "black", opacity=0.12), svg.line(x, bottom, x, bottom + 4, "black"),
                  svg.text(x, bottom + 15, f"{value:g}", _TEXT_SIZE, "middle")]  # fmt: skip
    for value in _linear_ticks(*axes.score):
        y = axes.y(value)
        parts += [svg.line(left, y, right, y, "black", opacity=0.12), svg.line(left - 4, y, left, y, "black"),
                  svg.text(left - 7, y, f"{value:g}", _TEXT_SIZE, "end")]  # fmt: skip
    return parts


def _log_ticks(low: float, high: float) -> list[float]:
    """The sparsest of 1, 1-2-5, 1..9 per decade that puts at least four ticks in view."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks: list[float] = []
    for mantissas in ((1,), (1, 2, 5), range(1, 10)):
        ticks = [t for k in decades for m in mantissas if low <= (t := round(m * 10.0**k, 12)) <= high]
        if len(ticks) >= 4:
            break
    return ticks


def _linear_ticks(low: float, high: float) -> list[float]:
    """Ticks at a round step (1, 2, 2.5 or 5 times a power of ten), at most eight of them."""
    raw = (high - low) / 8
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _reference_lines(axes: _Axes, target: float | None, baseline: dict[str, Any] | None) -> list[str]:
    """The teacher's 100 (dashed), the target (dotted) and the baseline's latency (dotted, vertical)."""
    left, top, right, bottom = axes.box
    parts = []
    for value, name, color, dash in ((100.0, "teacher", "grey", svg.DASHED), (target, "target", "#2ca02c", svg.DOTTED)):
        if value is not None:
            y = axes.y(value)
            parts += [svg.line(left, y, right, y, color, dash=dash), svg.text(left + 6, y - 7, name, 9, color=color)]
    if baseline is not None:
        x = axes.x(baseline["compared_p50_ms"])
        parts.append(svg.line(x, top, x, bottom, "grey", dash=svg.DOTTED))
    return parts


def _frontier(axes: _Axes, points: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """The frontier's corners as a post-step line: along at each point's score, then up to the next point's."""
    frontier = sorted((r for r in points if r["frontier"]), key=lambda r: r["compared_p50_ms"])
    corners = [(axes.x(r["compared_p50_ms"]), axes.y(r["score"])) for r in frontier]
    steps = corners[:1]
    for x, y in corners[1:]:
        steps += [(x, steps[-1][1]), (x, y)]
    return steps


def _around(a: tuple[float, float], b: tuple[float, float]) -> Box:
    """The box around a horizontal or vertical segment, a pixel either side."""
    return (min(a[0], b[0]) - 1, min(a[1], b[1]) - 1, max(a[0], b[0]) + 1, max(a[1], b[1]) + 1)


def _method(row: dict[str, Any]) -> str:
    return "teacher" if row["role"] == "teacher" else row["method"].split(";")[0].strip()


def _color(method: str) -> str:
    return _COLORS.get(method, "#9467bd" if "+" in method else "#8c564b")  # purple: a combination of methods


def _marker(axes: _Axes, row: dict[str, Any]) -> str:
    shape = "*" if row["baseline"] else _MARKERS.get(row["variant"], "X")
    hover = f"{row['name']}: {row['score']:.2f} at {row['compared_p50_ms']:.2f} ms"
    return svg.marker(shape, axes.x(row["compared_p50_ms"]), axes.y(row["score"]), _radius(row),
                      _color(_method(row)), 1.8 if row["frontier"] else 0.5, hover)  # fmt: skip


def _radius(row: dict[str, Any]) -> float:
    return _ROW_SIZE * (1.6 if row["baseline"] else 1.0)


def _labels(axes: _Axes, points: list[dict[str, Any]], avoid: list[Box]) -> list[str]:
    """Greedy placement: each label takes the first offset where it overlaps no label, marker or box to `avoid`
    (else the offset overlapping least), with a grey leader line when it sits away from its marker."""
    taken = list(avoid)
    for r in points:
        x, y, radius = axes.x(r["compared_p50_ms"]), axes.y(r["score"]), _radius(r)
        taken.append((x - radius, y - radius, x + radius, y + radius))
    parts = []
    for r in sorted(points, key=lambda r: (not r["baseline"], not r["frontier"], r["compared_p50_ms"])):
        label = r["name"] + (" (baseline)" if r["baseline"] else "")
        bold = r["frontier"] or r["baseline"]
        width = svg.text_width(label, _TEXT_SIZE, bold) + 6  # slack: the width is an estimate
        x, y = axes.x(r["compared_p50_ms"]), axes.y(r["score"])
        boxes = [_label_box(x, y, offset, width) for offset in _OFFSETS]
        costs = [sum(_overlap(b, t) for t in taken) + 10 * _outside(b, axes.box) for b in boxes]
        best = costs.index(min(costs))  # the first free offset, else the first that overlaps least
        (dx, dy), rect = _OFFSETS[best], boxes[best]
        taken.append(rect)
        anchor = "start" if dx > 0 else "end" if dx < 0 else "middle"
        parts += [*_leader(x, y, _radius(r), rect), svg.text(x + dx, y + dy, label, _TEXT_SIZE, anchor, bold=bold)]
    return parts


def _label_box(x: float, y: float, offset: tuple[int, int], width: float) -> Box:
    """Where a label of `width` sits when drawn at `offset` from its point (anchored as _labels anchors it)."""
    dx, dy = offset
    start = x + dx - (0 if dx > 0 else width if dx < 0 else width / 2)
    height = _TEXT_SIZE * 1.3
    return (start, y + dy - height / 2, start + width, y + dy + height / 2)


def _leader(x: float, y: float, radius: float, label: Box) -> list[str]:
    """A line from the marker's edge to the nearest point of its label, when there is a gap to bridge."""
    end_x, end_y = min(max(x, label[0]), label[2]), min(max(y, label[1]), label[3])
    length = math.hypot(end_x - x, end_y - y)
    if length < radius + 4:
        return []
    start = (radius + 1) / length
    return [svg.line(x + (end_x - x) * start, y + (end_y - y) * start, end_x, end_y, "grey", 0.5)]


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def _outside(a: Box, box: Box) -> float:
    return (a[2] - a[0]) * (a[3] - a[1]) - _overlap(a, box)


def _legend(axes: _Axes, points: list[dict[str, Any]]) -> tuple[Box, list[str]]:
    """Variants by shape, methods by colour, the frontier and the baseline; in the lower right corner."""
    entries = [(_MARKERS.get(v, "X"), "grey", v) for v in sorted({r["variant"] for r in points})]
    entries += [("o", _color(m), m) for m in sorted({_method(r) for r in points})]
    entries.append(("-", "black", "frontier (bold edge)"))
    if any(r["baseline"] for r in points):
        entries.append(("*", _COLORS["teacher"], "baseline (teacher, PyTorch)"))
    row = _TEXT_SIZE * 1.7
    width = 40 + max(svg.text_width(label, _TEXT_SIZE) for _, _, label in entries)
    right, bottom = axes.box[2] - 8, axes.box[3] - 8
    box = (right - width, bottom - row * len(entries) - 8, right, bottom)
    parts = [svg.rect(box, "#cccccc", "white", opacity=0.85)]
    for i, (shape, color, label) in enumerate(entries):
        x, y = box[0] + 18, box[1] + 4 + row * (i + 0.5)
        if shape in ("-", "*"):
            dash, opacity = (svg.DOTTED, None) if shape == "*" else (None, 0.6)
            parts.append(svg.line(x - 11, y, x + 11, y, color, 1.2, dash=dash, opacity=opacity))
        if shape != "-":
            parts.append(svg.marker(shape, x, y, 5.5, color, 0, kind="legend"))
        parts.append(svg.text(x + 18, y, label, _TEXT_SIZE))
    return box, parts
