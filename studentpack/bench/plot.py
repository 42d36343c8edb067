"""pareto.png: headline accuracy against served p50 latency, one panel per device, frontier drawn."""

from __future__ import annotations

import io
from typing import Any

from studentpack.ground.errors import UserError

_COLORS = {"teacher": "#444444", "mha": "#1f77b4", "hs": "#2ca02c", "od": "#d62728"}
_MARKERS = {
    "torch": "o",
    "fp32": "s",
    "fused": "D",
    "int8-dynamic": "^",
    "int8-static": "v",
    "fp16": "P",
    "openvino": "X",
    "openvino-int8": "<",
}


def _color(row: dict[str, Any]) -> str:
    if row["role"] == "teacher":
        return _COLORS["teacher"]
    method = row["method"].split(";")[0].strip()
    return _COLORS.get(method, "#9467bd" if "+" in method else "#8c564b")


def plot(report: dict[str, Any]) -> bytes:
    """The PNG's bytes (the caller writes them atomically)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UserError("the report's plot needs matplotlib: pip install 'studentpack[bench]'") from exc
    devices = [d for d in report["devices"] if _points(report, d)] or report["devices"][:1] or ["none"]
    fig, axes = plt.subplots(1, len(devices), figsize=(7.5 * len(devices), 5.6), squeeze=False)
    for ax, device in zip(axes[0], devices, strict=True):
        _panel(ax, report, device)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    plt.close(fig)
    return buffer.getvalue()


def _points(report: dict[str, Any], device: str) -> list[dict[str, Any]]:
    return [r for r in report["rows"] if r["device"] == device and r["score"] is not None and r["compared_p50_ms"]]


def _panel(ax: Any, report: dict[str, Any], device: str) -> None:
    points = _points(report, device)
    score = report.get("score") or {}
    users = (report.get("compared_users") or {}).get(device)
    ax.set_title(f"{device}: accuracy vs served latency", fontsize=11)
    ax.set_xlabel(f"served p50 latency at concurrency {users} (ms, log scale)")
    axis = {"pct_of_teacher": "% of the teacher\n(" + " + ".join(score.get("metrics") or []) + ")",
            "label_free": "recall@10 of the teacher's neighbours (%)\nheld-out English, no labels"}  # fmt: skip
    ax.set_ylabel(axis.get(score.get("kind") or "", "score"), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if not points:
        ax.text(0.5, 0.5, "no row with both accuracy and latency", ha="center", va="center", transform=ax.transAxes)
        return
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    xs = [r["compared_p50_ms"] for r in points]
    ys = [r["score"] for r in points]
    low = min([*ys, score["target"]] if score.get("target") is not None else ys)  # the target line stays inside
    span = max(max(ys), 100.0) - low or 1.0
    ax.set_ylim(low - 0.08 * span, max(max(ys), 100.0) + 0.1 * span)
    ax.set_xlim(min(xs) / 1.4, max(xs) * 1.4)
    ax.axhline(100.0, color="grey", linestyle="--", linewidth=0.8, zorder=1)
    ax.text(0.01, 100.0, " teacher", transform=ax.get_yaxis_transform(), va="bottom", fontsize=7, color="grey")
    if score.get("target") is not None:
        ax.axhline(score["target"], color="#2ca02c", linestyle=":", linewidth=0.8, zorder=1)
        ax.text(0.01, score["target"], " target", transform=ax.get_yaxis_transform(), va="bottom", fontsize=7,
                color="#2ca02c")  # fmt: skip
    baseline = next((r for r in points if r["baseline"]), None)
    if baseline is not None:
        ax.axvline(baseline["compared_p50_ms"], color="grey", linestyle=":", linewidth=0.8, zorder=1)
    for r in points:
        ax.scatter(r["compared_p50_ms"], r["score"], s=150 if r["baseline"] else 70, c=_color(r),
                   marker="*" if r["baseline"] else _MARKERS.get(r["variant"], "X"), edgecolors="black",
                   linewidths=1.6 if r["frontier"] else 0.4, zorder=3)  # fmt: skip
    frontier = sorted((r for r in points if r["frontier"]), key=lambda r: r["compared_p50_ms"])
    if frontier:
        fx = [r["compared_p50_ms"] for r in frontier]
        fy = [r["score"] for r in frontier]
        ax.step(fx, fy, where="post", color="black", linewidth=1.0, alpha=0.6, zorder=2)
    _labels(ax, points)
    _legend(ax, points)


_LEADER = {"arrowstyle": "-", "color": "grey", "lw": 0.5, "shrinkA": 0, "shrinkB": 4}  # label-to-point line
# label offsets tried in order (points): right, left, above, below, then the diagonals, then further out
_OFFSETS = [(7, -4), (-7, -4), (0, 8), (0, -14), (7, 7), (-7, 7), (7, -14), (-7, -14),
            (14, 16), (-14, 16), (14, -24), (-14, -24), (0, 22), (0, -28)]  # fmt: skip


def _labels(ax: Any, points: list[dict[str, Any]]) -> None:
    """Greedy placement: each label takes the first offset where it overlaps no label or marker."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    taken = []
    for r in points:  # the markers themselves, a few pixels around each
        x, y = ax.transData.transform((r["compared_p50_ms"], r["score"]))
        taken.append((x - 6, y - 6, x + 6, y + 6))
    order = sorted(points, key=lambda r: (not r["baseline"], not r["frontier"], r["compared_p50_ms"]))
    for r in order:
        label = r["name"] + (" (baseline)" if r["baseline"] else "")
        bold = "bold" if r["frontier"] or r["baseline"] else "normal"
        best, best_cost = None, float("inf")
        for dx, dy in _OFFSETS:
            text = ax.annotate(label, (r["compared_p50_ms"], r["score"]), textcoords="offset points",
                               xytext=(dx, dy), fontsize=8, fontweight=bold, ha="left" if dx > 0 else "right" if dx < 0
                               else "center", va="center", zorder=4,
                               arrowprops=_LEADER)  # fmt: skip
            box = text.get_window_extent(renderer)
            rect = (box.x0, box.y0, box.x1, box.y1)
            cost = sum(_overlap(rect, other) for other in taken)
            cost += _outside(rect, (inside.x0, inside.y0, inside.x1, inside.y1)) * 10
            if cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (text, rect), cost
            else:
                text.remove()
            if cost == 0:
                break
        assert best is not None
        taken.append(best[1])


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def _outside(a: tuple[float, ...], box: tuple[float, ...]) -> float:
    area = (a[2] - a[0]) * (a[3] - a[1])
    return area - _overlap(a, box)


def _legend(ax: Any, points: list[dict[str, Any]]) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for variant in sorted({r["variant"] for r in points}):
        handles.append(Line2D([], [], marker=_MARKERS.get(variant, "X"), color="grey", linestyle="", label=variant))
    for name in sorted({r["method"].split(";")[0].strip() if r["role"] != "teacher" else "teacher" for r in points}):
        color = _COLORS.get(name, "#8c564b")
        handles.append(Line2D([], [], marker="o", color=color, linestyle="", label=name))
    handles.append(Line2D([], [], color="black", alpha=0.6, label="frontier (bold edge)"))
    if any(r["baseline"] for r in points):
        handles.append(Line2D([], [], marker="*", color="#444444", linestyle=":", label="baseline (teacher, PyTorch)"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
