"""SVG primitives for the report's plot, standard library only: each returns one element as a string."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CHAR_WIDTH = 0.6  # a sans-serif character's width over the font size, on average: no font metrics here
DASHED = "5,3"
DOTTED = "1.5,2.5"

Value = float | int | str | None  # an attribute's; None leaves it out


def _polygon(
    corners: int, start_degrees: float, scale: float = 1.0, inner: float | None = None
) -> list[tuple[float, float]]:
    """A regular polygon's vertices (a star's when `inner` gives the radius of the notches between its points)."""
    radii = [scale] if inner is None else [scale, scale * inner]
    count = corners * len(radii)
    angles = [math.radians(start_degrees + 360.0 * i / count) for i in range(count)]
    return [(radii[i % len(radii)] * math.cos(a), radii[i % len(radii)] * math.sin(a)) for i, a in enumerate(angles)]


def _cross(rotate_degrees: float) -> list[tuple[float, float]]:
    arm = 0.33
    plus = [(-arm, -1), (arm, -1), (arm, -arm), (1, -arm), (1, arm), (arm, arm),
            (arm, 1), (-arm, 1), (-arm, arm), (-1, arm), (-1, -arm), (-arm, -arm)]  # fmt: skip
    turn = math.radians(rotate_degrees)
    return [(x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn)) for x, y in plus]


# matplotlib's marker letters -> vertices around (0, 0), radius about 1; y grows downwards
SHAPES: dict[str, list[tuple[float, float]]] = {
    "s": [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
    "D": _polygon(4, -90, scale=1.1),
    "^": _polygon(3, -90, scale=1.25),
    "v": _polygon(3, 90, scale=1.25),
    "<": _polygon(3, 180, scale=1.25),
    "P": _cross(0),
    "X": _cross(45),
    "*": _polygon(5, -90, inner=0.4),
    "p": _polygon(5, -90, scale=1.15),
}


def _number(value: float | int | str) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def element(name: str, attrs: dict[str, Value], body: str = "") -> str:
    """`<name attrs>body</name>`; attribute values quoted and escaped, None ones left out."""
    text = "".join(f" {key}={quoteattr(_number(value))}" for key, value in attrs.items() if value is not None)
    return f"<{name}{text}>{body}</{name}>" if body else f"<{name}{text}/>"


def document(width: float, height: float, parts: list[str]) -> bytes:
    head = element("rect", {"width": "100%", "height": "100%", "fill": "white"})
    svg = element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": width, "height": height,
                          "viewBox": f"0 0 {_number(width)} {_number(height)}", "font-family": FONT},
                  "\n" + "\n".join([head, *parts]) + "\n")  # fmt: skip
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n").encode()


def line(x1: float, y1: float, x2: float, y2: float, color: str, width: float = 0.8, dash: str | None = None,
         opacity: float | None = None) -> str:  # fmt: skip
    return element("line", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "stroke": color, "stroke-width": width,
                            "stroke-dasharray": dash, "stroke-opacity": opacity})  # fmt: skip


def polyline(points: list[tuple[float, float]], color: str, width: float, opacity: float | None = None) -> str:
    joined = " ".join(f"{_number(x)},{_number(y)}" for x, y in points)
    return element("polyline", {"points": joined, "fill": "none", "stroke": color, "stroke-width": width,
                                "stroke-opacity": opacity})  # fmt: skip


def rect(box: tuple[float, float, float, float], stroke: str, fill: str = "none", opacity: float | None = None) -> str:
    x0, y0, x1, y1 = box
    return element("rect", {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "stroke": stroke,
                            "stroke-width": 0.8, "fill": fill, "fill-opacity": opacity})  # fmt: skip


def text(x: float, y: float, content: str, size: float, anchor: str = "start", color: str = "black",
         bold: bool = False, rotate: bool = False) -> str:  # fmt: skip
    """One line of text, vertically centred on y (a baseline a third of the size below it)."""
    baseline = y + size * 0.35
    turn = f"rotate(-90 {_number(x)} {_number(y)})" if rotate else None
    return element("text", {"x": x, "y": baseline, "font-size": size, "text-anchor": anchor, "fill": color,
                            "font-weight": "bold" if bold else None, "transform": turn}, escape(content))  # fmt: skip


def text_width(content: str, size: float, bold: bool = False) -> float:
    return len(content) * size * CHAR_WIDTH * (1.1 if bold else 1.0)


def marker(shape: str, x: float, y: float, radius: float, fill: str, edge: float, title: str | None = None,
           kind: str = "marker") -> str:  # fmt: skip
    """A filled marker of `shape` (a SHAPES key, anything else a circle) with a black edge; `title` shows on
    hover; `kind` is its class: "marker" for a row's point, another for a legend's sample."""
    style: dict[str, Value] = {"fill": fill, "stroke": "black", "stroke-width": edge, "class": kind}
    body = element("title", {}, escape(title)) if title else ""
    if shape not in SHAPES:
        return element("circle", {"cx": x, "cy": y, "r": radius * 0.9, **style}, body)
    corners = " ".join(f"{_number(x + radius * dx)},{_number(y + radius * dy)}" for dx, dy in SHAPES[shape])
    return element("polygon", {"points": corners, **style}, body)
