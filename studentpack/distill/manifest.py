"""The finished student: a standard Hugging Face directory plus `studentpack.json` (its provenance)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from studentpack.config import to_dict
from studentpack.distill.plan import RunPlan
from studentpack.distill.rundir import MANIFEST
from studentpack.ground import atomic
from studentpack.ground.provenance import hash_directory, machine, package_versions
from studentpack.model.sentence_head import save_dense

FORMAT = "studentpack.distill/1"
# sentence-transformers files that make the student load with SentenceTransformer(dir) too
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
_ST_POOLING = "1_Pooling/config.json"


def build_manifest(plan: RunPlan, student: Any, extra: dict[str, Any]) -> dict[str, Any]:
    cfg = plan.config
    return {
        "format": FORMAT,
        "teacher": {
            "name": plan.teacher.name,
            "origin": plan.teacher.origin,
            "path": str(plan.teacher.path),
            "sha256": hash_directory(plan.teacher.path),
            "model_type": plan.teacher_config.get("model_type"),
            "layers": plan.teacher_layers,
            "hidden": plan.teacher_config.get("hidden_size"),
        },
        "student": {**plan.shape.describe(), "parameters": sum(p.numel() for p in student.parameters())},
        "method": cfg.method,
        "config": to_dict(cfg),
        "layer_map": plan.layer_map.describe() if plan.layer_map else None,
        "init_map": plan.init_map.describe() if plan.init_map else None,
        "relation_heads": plan.relation_heads,
        "relation_heads_note": plan.relation_note or None,
        "teacher_layer": plan.teacher_layer,
        "corpus": plan.corpus.describe(),
        "steps": cfg.steps,
        "seed": cfg.seed,
        "versions": package_versions(),
        "machine": machine(),
        **extra,
    }


def write_student(
    path: Path, student: Any, tokenizer: Any, plan: RunPlan, manifest_extra: dict[str, Any],
    dense: tuple[str, nn.Linear] | None = None,
) -> None:  # fmt: skip
    """The student directory, complete or not at all; `dense` (the transfer it came from, the projection)
    becomes its sentence-transformers Dense, so its embeddings come out in the teacher's width."""
    with atomic.atomic_dir(path, overwrite=True) as tmp:
        student.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        _copy_sentence_transformers_files(plan.teacher.path, tmp, student.config.hidden_size)
        extra = dict(manifest_extra)
        if dense is not None:
            source, projection = dense
            save_dense(tmp, projection)
            extra["sentence_dense"] = {"from": source, "in": projection.in_features, "out": projection.out_features}
        atomic.write_json(tmp / MANIFEST, build_manifest(plan, student, extra))


def _copy_sentence_transformers_files(teacher: Path, target: Path, hidden: int) -> None:
    for name in _ST_FILES:
        if (teacher / name).is_file():
            shutil.copy2(teacher / name, target / name)
    pooling = teacher / _ST_POOLING
    if pooling.is_file():
        config = json.loads(pooling.read_text())
        config["word_embedding_dimension"] = hidden
        atomic.write_json(target / _ST_POOLING, config)
