"""Build a student encoder from a teacher: shape defaults derived from the teacher, init from its layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studentpack.ground.errors import UserError
from studentpack.model import adapter


@dataclass(frozen=True)
class StudentSpec:
    """What the user asked for; None means 'derive from the teacher'."""

    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    intermediate: int | None = None


@dataclass(frozen=True)
class StudentShape:
    layers: int
    hidden: int
    heads: int
    intermediate: int

    def describe(self) -> dict[str, int]:
        return {"layers": self.layers, "hidden": self.hidden, "heads": self.heads, "intermediate": self.intermediate}


def resolve_shape(spec: StudentSpec, teacher_config: dict[str, Any]) -> StudentShape:
    """Half the teacher's depth by default; heads keep the teacher's head width; FFN keeps its ratio."""
    t_layers, t_hidden, t_heads, t_inter = adapter.shape_of(teacher_config)
    layers = spec.layers if spec.layers is not None else max(1, t_layers // 2)
    hidden = spec.hidden if spec.hidden is not None else t_hidden
    if layers < 1 or hidden < 1:
        raise UserError("--student-layers and --student-hidden must be positive")
    head_dim = t_hidden // t_heads
    heads = spec.heads if spec.heads is not None else (t_heads if hidden == t_hidden else max(1, hidden // head_dim))
    if heads < 1 or hidden % heads:
        raise UserError(
            f"--student-hidden {hidden} is not divisible by the number of heads ({heads}); set --student-heads"
        )
    intermediate = spec.intermediate if spec.intermediate is not None else t_inter * hidden // t_hidden
    if intermediate < 1:
        raise UserError("--student-intermediate must be positive")
    return StudentShape(layers, hidden, heads, intermediate)


def can_copy_teacher(shape: StudentShape, teacher_config: dict[str, Any]) -> bool:
    _, t_hidden, t_heads, t_inter = adapter.shape_of(teacher_config)
    return (shape.hidden, shape.heads, shape.intermediate) == (t_hidden, t_heads, t_inter)


def build_student(teacher: Any, shape: StudentShape, init_layers: list[int]) -> tuple[Any, dict[str, Any]]:
    """A new encoder of `shape`; when widths match, embeddings and layers are copied from `init_layers`.

    `init_layers[i]` is the 1-based teacher layer copied into student layer i + 1.
    Returns the model and a record of how it was initialised (for the manifest).
    """
    student = adapter.new_encoder_like(teacher, shape.layers, shape.hidden, shape.heads, shape.intermediate)
    if not can_copy_teacher(shape, teacher.config.to_dict()):
        record: dict[str, Any] = {"kind": "random", "reason": "student width differs from the teacher's"}
    else:
        if len(init_layers) != shape.layers:
            raise ValueError(f"need one teacher layer per student layer, got {init_layers}")
        adapter.copy_embeddings(teacher, student)
        for i, teacher_layer in enumerate(init_layers, start=1):
            adapter.copy_layer(teacher, teacher_layer, student, i)
        adapter.copy_pooler(teacher, student)
        record = {"kind": "teacher-layers", "teacher_layers": list(init_layers)}
    adapter.freeze_pooler(student)
    return student, record
