"""Find what earlier stages left under some directories and tie it together by content hash.

Artifacts read (each written by its own verb):
  studentpack.json   a distilled student's provenance (teacher hash, method, layer maps, parameters)
  export.json        an exported variant (its source model's hash, variant, gate figures, size)
  eval.json          evaluation results (`details.model_sha256`: the scored directory's hash)
  loadtest.json      load-test results (`target.info.sha256`: the served directory's hash)
  pipeline.json      a pipeline run's ledger: its budget plan (steps per student and why) is reported

Every model directory is known by `provenance.hash_directory`, which `studentpack serve` also
reports for what it serves, so a load test or a served evaluation finds its files without relying
on paths or names. Rejected variants and unfinished (temporary) directories are skipped.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studentpack.engines.graph import is_variant_dir
from studentpack.ground.atomic import is_temporary
from studentpack.ground.errors import UserError

ARTIFACTS = ("studentpack.json", "export.json", "eval.json", "loadtest.json")


@dataclass
class Model:
    """One model directory: an HF directory (variant 'torch') or an exported variant."""

    sha256: str
    path: Path
    variant: str  # torch | fp32 | fused | int8-dynamic | ...
    family: str  # hash of the HF directory it came from (itself for an HF directory)
    run: str  # a short name for the family (the run directory's name, or 'teacher')
    size_bytes: int
    manifest: dict[str, Any] | None = None  # studentpack.json of the family, when it is a student
    export: dict[str, Any] | None = None


@dataclass
class Found:
    models: dict[str, Model] = field(default_factory=dict)  # by sha256
    evals: list[dict[str, Any]] = field(default_factory=list)  # eval results, each with "_file"
    loadtests: list[dict[str, Any]] = field(default_factory=list)
    teacher_shas: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)  # what was found but not used, and why
    budgets: list[dict[str, Any]] = field(default_factory=list)  # pipeline budget plans, each with "_file"


def find(roots: list[Path]) -> Found:
    for root in roots:
        if not root.exists():
            raise UserError(f"{root} does not exist")
    files: dict[str, list[Path]] = {name: [] for name in ARTIFACTS}
    for root in roots:
        for name in ARTIFACTS:
            candidates = [root] if root.is_file() and root.name == name else sorted(root.rglob(name))
            files[name].extend(p for p in candidates if _usable(p, root))
    if not any(files.values()):
        raise UserError(f"no studentpack artifacts ({', '.join(ARTIFACTS)}) under {', '.join(map(str, roots))}")
    found = Found()
    for path in files["studentpack.json"]:
        _add_student(found, path)
    for path in files["export.json"]:
        _add_variant(found, path)
    for path in files["eval.json"]:
        _add_evals(found, path)
    for path in files["loadtest.json"]:
        doc = _read(path, found)
        if doc and str(doc.get("schema", "")).startswith("studentpack.loadtest/"):
            doc["_file"] = str(path)
            found.loadtests.append(doc)
            _add_served_dir(found, doc)
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("pipeline.json")):
            ledger = _read(path, found) if path.name == "pipeline.json" and _usable(path, root) else None
            if ledger and isinstance(ledger.get("budget"), dict) and isinstance(ledger["budget"].get("plan"), dict):
                found.budgets.append({"_file": str(path), **ledger["budget"]["plan"]})
    _add_packaged_teacher(found)
    return found


def _usable(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts if path != root else ()
    return not any(is_temporary(Path(p)) or p.startswith(".") or p == "rejected" for p in parts[:-1])


def _read(path: Path, found: Found) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        found.skipped.append(f"{path}: unreadable ({type(exc).__name__})")
        return None
    return data if isinstance(data, dict) else None


def _add_student(found: Found, path: Path) -> None:
    from studentpack.ground.provenance import hash_directory

    manifest = _read(path, found)
    if not manifest or not str(manifest.get("format", "")).startswith("studentpack.distill/"):
        return
    directory = path.parent
    sha = hash_directory(directory)
    teacher = manifest.get("teacher") or {}
    if teacher.get("sha256"):
        found.teacher_shas.add(teacher["sha256"])
    run = directory.parent.name if directory.name == "student" else directory.name
    variant = "static" if (manifest.get("config") or {}).get("method") == "static" else "torch"
    found.models[sha] = Model(sha, directory, variant, sha, run, _weights_bytes(directory), manifest=manifest)


def _add_variant(found: Found, path: Path) -> None:
    from studentpack.ground.provenance import hash_directory

    record = _read(path, found)
    if not record or not str(record.get("schema", "")).startswith("studentpack.export/"):
        return
    if record.get("status") != "accepted":
        found.skipped.append(f"{path.parent}: export {record.get('status')}, left out")
        return
    directory = path.parent
    sha = hash_directory(directory)
    family = (record.get("source") or {}).get("sha256") or sha
    run = directory.parent.parent.name if directory.parent.name == "onnx" else directory.parent.name
    size = sum(p.stat().st_size for p in directory.iterdir() if p.suffix in (".onnx", ".data", ".xml", ".bin"))
    found.models[sha] = Model(sha, directory, str(record.get("variant")), family, run, size, export=record)


def _add_evals(found: Found, path: Path) -> None:
    data = _read(path, found)
    if not data or not str(data.get("format", "")).startswith("studentpack.eval/"):
        return
    for key, by_task in (data.get("results") or {}).items():
        for result in (by_task or {}).values():
            if isinstance(result, dict):
                found.evals.append({**result, "_file": str(path), "_key": key})


def _add_served_dir(found: Found, doc: dict[str, Any]) -> None:
    """A load test of a directory outside the scanned roots (the packaged teacher, say): know it too."""
    target = doc.get("target") or {}
    sha = (target.get("info") or {}).get("sha256")
    directory = target.get("model_dir")
    if not sha or sha in found.models or not directory or not Path(directory).is_dir():
        return
    _add_directory(found, Path(directory), sha)


def _add_packaged_teacher(found: Found) -> None:
    """The packaged teacher, when a student names it or something served it: it is the baseline's model."""
    from studentpack.ground.provenance import hash_directory
    from studentpack.text.sources import packaged_teacher_dir

    try:
        path = packaged_teacher_dir()
    except UserError:
        return
    sha = hash_directory(path)
    if not found.teacher_shas:
        found.teacher_shas.add(sha)  # no student says otherwise: the default teacher is the teacher
    if sha in found.teacher_shas and sha not in found.models:
        _add_directory(found, path, sha)


def _add_directory(found: Found, directory: Path, sha: str) -> None:
    if is_variant_dir(directory):
        _add_variant(found, directory / "export.json")
        return
    manifest_path = directory / "studentpack.json"
    if manifest_path.is_file():
        _add_student(found, manifest_path)
        return
    name = "teacher" if sha in found.teacher_shas else directory.name
    found.models[sha] = Model(sha, directory, "torch", sha, name, _weights_bytes(directory))


def _weights_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*") if p.suffix in (".safetensors", ".bin"))


def parameter_count(directory: Path) -> int | None:
    """Parameters of an HF directory from its safetensors headers (no tensors read, no torch)."""
    total = 0
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total
