"""Which student layer learns from which teacher layer: named strategies and explicit pairs.

Layers are 1-based; 0 is the embedding output. For a teacher of T layers and a student of S:

- ``last``:          S <- T (only the final layer)
- ``top``:           i <- T - S + i (the teacher's top S layers)
- ``uniform``:       i <- 1 + floor((i - 1) * T / S) (every T/S-th layer from the bottom: the skip map)
- ``uniform-last``:  as ``uniform``, but the student's last layer learns from the teacher's last
- ``"1:2,2:4,3:6"``: explicit ``student:teacher`` pairs
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studentpack.ground.errors import UserError

STRATEGIES = ("last", "top", "uniform", "uniform-last")
_PAIR = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class LayerMap:
    pairs: tuple[tuple[int, int], ...]  # (student layer, teacher layer)
    strategy: str
    student_layers: int
    teacher_layers: int

    @classmethod
    def build(cls, spec: str, student_layers: int, teacher_layers: int, embeddings: bool = False) -> LayerMap:
        if student_layers < 1 or teacher_layers < 1:
            raise UserError("layer maps need at least one student and one teacher layer")
        if spec in STRATEGIES:
            if student_layers > teacher_layers and spec != "last":
                raise UserError(
                    f"layer map {spec}: the student ({student_layers} layers) is deeper than the teacher "
                    f"({teacher_layers}); use explicit pairs"
                )
            pairs = _named_pairs(spec, student_layers, teacher_layers)
        else:
            pairs = _parse_pairs(spec)
        if embeddings and (0, 0) not in pairs:
            pairs = [(0, 0), *pairs]
        layer_map = cls(tuple(pairs), spec, student_layers, teacher_layers)
        layer_map.validate(monotone=spec in STRATEGIES)
        return layer_map

    def validate(self, monotone: bool) -> None:
        for s, t in self.pairs:
            if not 0 <= s <= self.student_layers:
                raise UserError(
                    f"layer map {self.strategy}: student layer {s} is out of range 0..{self.student_layers}"
                )
            if not 0 <= t <= self.teacher_layers:
                raise UserError(
                    f"layer map {self.strategy}: teacher layer {t} is out of range 0..{self.teacher_layers}"
                )
        students = [s for s, _ in self.pairs]
        if len(set(students)) != len(students):
            raise UserError(f"layer map {self.strategy}: a student layer appears twice")
        if monotone:
            teachers = [t for _, t in self.pairs]
            if students != sorted(students) or teachers != sorted(teachers):
                raise UserError(f"layer map {self.strategy}: pairs must increase on both sides")

    def teacher_for(self, student_layer: int) -> int | None:
        return dict(self.pairs).get(student_layer)

    def covers_all_student_layers(self) -> bool:
        """True when every student layer 1..S learns from a teacher layer (not the embeddings)."""
        layers = {s for s, t in self.pairs if t >= 1}
        return layers >= set(range(1, self.student_layers + 1))

    def init_layers(self) -> list[int]:
        """Teacher layer for student layers 1..S, in order (requires covers_all_student_layers)."""
        mapping = {s: t for s, t in self.pairs if s >= 1}
        return [mapping[s] for s in range(1, self.student_layers + 1)]

    def describe(self) -> dict[str, object]:
        return {"strategy": self.strategy, "pairs": [list(p) for p in self.pairs]}


def _named_pairs(spec: str, s_layers: int, t_layers: int) -> list[tuple[int, int]]:
    if spec == "last":
        return [(s_layers, t_layers)]
    if spec == "top":
        return [(i, t_layers - s_layers + i) for i in range(1, s_layers + 1)]
    uniform = [(i, 1 + (i - 1) * t_layers // s_layers) for i in range(1, s_layers + 1)]
    if spec == "uniform-last":
        uniform[-1] = (s_layers, t_layers)
    return uniform


def _parse_pairs(spec: str) -> list[tuple[int, int]]:
    pairs = []
    for part in spec.split(","):
        match = _PAIR.match(part)
        if not match:
            raise UserError(f"layer map {spec!r}: use one of {', '.join(STRATEGIES)} or pairs like 1:2,2:4,3:6")
        pairs.append((int(match.group(1)), int(match.group(2))))
    return pairs
