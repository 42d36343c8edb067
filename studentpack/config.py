"""Typed run configuration: frozen dataclasses built from YAML/TOML/JSON files and `--set a.b=c`.

Files are data, never code: YAML is read with `safe_load`. Unknown keys and wrong types are
errors that name the offending key.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from studentpack.ground.errors import UserError

T = TypeVar("T")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a config file (.yaml/.yml, .toml or .json) into a plain mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise UserError(f"config file {path}: use .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"config file {path} does not parse: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise UserError(f"config file {path}: the top level must be a mapping")
    return data


def apply_sets(data: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides; values are parsed as YAML scalars (3, 0.5, true, [a, b])."""
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {key}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def build(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass `cls` from `data`, checking keys and types recursively."""
    if not isinstance(data, Mapping):
        raise UserError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise UserError(f"unknown config key {_join(where, unknown[0])} (known: {known})")
    values = {name: _coerce(hints[name], data[name], _join(where, name)) for name in data}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where or 'config'}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Plain, JSON-ready data from a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    return obj


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise UserError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise UserError(f"{key}: expected a list, got {type(value).__name__}")
        (item_hint, *_rest) = get_args(hint) or (Any,)
        items = [_coerce(item_hint, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"{key}: expected a mapping, got {type(value).__name__}")
        _key_hint, value_hint = get_args(hint) or (str, Any)
        return {str(k): _coerce(value_hint, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)  # type: ignore[arg-type]
    return _coerce_scalar(hint, value, key)


def _coerce_scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)  # YAML 1.1 reads 3e-4 as a string
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {hint!r} for {key}")
    raise UserError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
