"""Where an ONNX file keeps its external tensor data, read from the protobuf wire format directly.

Serving must refuse a graph that points its weights outside its own directory (a hostile file could
name ../../etc/shadow) before any runtime opens it. The `onnx` package can say where the data lies,
but it is a training-side dependency (30+ MB, and it parses the whole model into memory); the few
fields needed here are read by walking the wire format, skipping every large field by its length.

Field numbers (onnx.proto3): ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto.name = 8,
TensorProto.external_data = 13; StringStringEntryProto.key = 1, .value = 2.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA = 8, 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: bytes | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes | mmap.mmap, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field of the message in buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            _, pos = _varint(buf, pos, end)
        elif kind == _FIXED64:
            pos += 8
        elif kind == _FIXED32:
            pos += 4
        elif kind == _LENGTH:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, pos, pos + length
            pos += length
        else:
            raise WireError(f"unsupported wire type {kind} (field {number})")
    if pos != end:
        raise WireError("a field runs past the end of its message")


def _text(buf: bytes | mmap.mmap, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _location(buf: bytes | mmap.mmap, start: int, end: int) -> str | None:
    """The value of a StringStringEntryProto whose key is "location"."""
    key = value = None
    for number, a, b in _fields(buf, start, end):
        if number == _ENTRY_KEY:
            key = _text(buf, a, b)
        elif number == _ENTRY_VALUE:
            value = _text(buf, a, b)
    return value if key == "location" else None


def external_locations(model_path: Path) -> list[tuple[str, str]]:
    """(initializer name, location) for every initializer of the graph that keeps its data in another file."""
    found: list[tuple[str, str]] = []
    with open(model_path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            raise WireError("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, g_start, g_end in _fields(buf, 0, len(buf)):
                if number != _MODEL_GRAPH:
                    continue
                for field, t_start, t_end in _fields(buf, g_start, g_end):
                    if field != _GRAPH_INITIALIZER:
                        continue
                    name, locations = "", []
                    for item, a, b in _fields(buf, t_start, t_end):
                        if item == _TENSOR_NAME:
                            name = _text(buf, a, b)
                        elif item == _TENSOR_EXTERNAL_DATA:
                            locations.append(_location(buf, a, b))
                    found.extend((name, where) for where in locations if where is not None)
    return found
