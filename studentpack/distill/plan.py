"""Resolve and validate a run before any heavy work: every user mistake surfaces here, in one line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from studentpack.distill.config import DistillConfig
from studentpack.ground.errors import UserError
from studentpack.model import adapter
from studentpack.model.student import StudentShape, can_copy_teacher, resolve_shape
from studentpack.text.corpus import Corpus, load_corpus
from studentpack.text.sources import ModelSource, position_limit, resolve_model
from studentpack.transfer.layer_map import LayerMap
from studentpack.transfer.relations import choose_relation_heads, default_teacher_layer


@dataclass(frozen=True)
class RunPlan:
    config: DistillConfig
    teacher: ModelSource
    teacher_config: dict[str, Any]
    shape: StudentShape
    init_map: LayerMap | None  # None when the student is initialised randomly
    layer_map: LayerMap | None  # HS pairs
    relation_heads: int | None
    relation_note: str
    teacher_layer: int | None  # MHA source layer
    corpus: Corpus

    @property
    def teacher_layers(self) -> int:
        return int(self.teacher_config["num_hidden_layers"])


def make_plan(config: DistillConfig) -> RunPlan:
    _check_numbers(config)
    teacher = resolve_model(config.teacher, "teacher")
    teacher_config = adapter.check_encoder_dir(teacher.path, config.allow_pickle, "teacher")
    positions = position_limit(teacher_config)
    if config.max_length > positions:  # packed rows are full: they must fit the position table
        config = dataclasses.replace(config, max_length=positions)
    shape = resolve_shape(config.student, teacher_config)
    t_layers = int(teacher_config["num_hidden_layers"])
    methods = config.methods()
    layer_map = (
        LayerMap.build(config.layer_map, shape.layers, t_layers, config.hs_embeddings) if "hs" in methods else None
    )
    relation_heads, note, teacher_layer = None, "", None
    if "mha" in methods:
        relation_heads, note = choose_relation_heads(
            shape.hidden, int(teacher_config["hidden_size"]), config.relation_heads
        )
        teacher_layer = config.teacher_layer if config.teacher_layer is not None else default_teacher_layer(t_layers)
        if not 1 <= teacher_layer <= t_layers:
            raise UserError(f"--teacher-layer {teacher_layer} is out of range 1..{t_layers}")
    init_map = _init_map(config, shape, t_layers, layer_map) if can_copy_teacher(shape, teacher_config) else None
    corpus = load_corpus(config.corpus, pairs=config.pairs)
    return RunPlan(
        config, teacher, teacher_config, shape, init_map, layer_map, relation_heads, note, teacher_layer, corpus
    )


def _init_map(config: DistillConfig, shape: StudentShape, t_layers: int, layer_map: LayerMap | None) -> LayerMap:
    if shape.layers > t_layers:
        raise UserError(f"the student ({shape.layers} layers) cannot be initialised from a {t_layers}-layer teacher")
    if config.init_map is not None:
        chosen = LayerMap.build(config.init_map, shape.layers, t_layers)
    elif layer_map is not None and layer_map.covers_all_student_layers():
        chosen = layer_map
    else:
        chosen = LayerMap.build("uniform-last", shape.layers, t_layers)
    if not chosen.covers_all_student_layers():
        raise UserError(f"--init-map {chosen.strategy} must name a teacher layer for every student layer")
    return chosen


def _check_numbers(config: DistillConfig) -> None:
    checks = [
        (config.steps >= 1, "--steps must be at least 1"),
        (config.batch_size >= 1, "--batch-size must be at least 1"),
        (config.max_length >= 8, "--max-length must be at least 8"),
        (config.lr > 0, "--lr must be positive"),
        (0 <= config.warmup < 1, "--warmup is a fraction of the steps, in [0, 1)"),
        (0 < config.mask_prob < 1, "--mask-prob must be in (0, 1)"),
        (config.temperature > 0, "--temperature must be positive"),
        (config.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
        (config.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1"),
        (config.log_every >= 1, "--log-every must be at least 1"),
        (config.fit_head_steps >= 0, "--fit-head-steps must be >= 0"),
        (config.snapshot_every >= 0, "--snapshot-every must be >= 0"),
        (0 <= config.dropout < 1, "--dropout must be in [0, 1)"),
        (config.threads is None or config.threads >= 1, "--threads must be at least 1"),
        (config.teacher_cache_mb >= 0, "teacher_cache_mb must be >= 0 (0 turns the cache off)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
