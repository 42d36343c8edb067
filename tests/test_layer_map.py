"""Layer-map strategies produce the documented pairs and reject bad maps."""

from __future__ import annotations

import pytest

from studentpack.ground.errors import UserError
from studentpack.transfer.layer_map import LayerMap

EXPECTED = {
    (6, 3): {
        "last": [(3, 6)],
        "top": [(1, 4), (2, 5), (3, 6)],
        "uniform": [(1, 1), (2, 3), (3, 5)],
        "uniform-last": [(1, 1), (2, 3), (3, 6)],
    },
    (12, 4): {
        "last": [(4, 12)],
        "top": [(1, 9), (2, 10), (3, 11), (4, 12)],
        "uniform": [(1, 1), (2, 4), (3, 7), (4, 10)],
        "uniform-last": [(1, 1), (2, 4), (3, 7), (4, 12)],
    },
    (12, 6): {
        "last": [(6, 12)],
        "top": [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11), (6, 12)],
        "uniform": [(1, 1), (2, 3), (3, 5), (4, 7), (5, 9), (6, 11)],
        "uniform-last": [(1, 1), (2, 3), (3, 5), (4, 7), (5, 9), (6, 12)],
    },
    (24, 6): {
        "last": [(6, 24)],
        "top": [(1, 19), (2, 20), (3, 21), (4, 22), (5, 23), (6, 24)],
        "uniform": [(1, 1), (2, 5), (3, 9), (4, 13), (5, 17), (6, 21)],
        "uniform-last": [(1, 1), (2, 5), (3, 9), (4, 13), (5, 17), (6, 24)],
    },
}


@pytest.mark.parametrize(("teacher", "student"), list(EXPECTED))
@pytest.mark.parametrize("strategy", ["last", "top", "uniform", "uniform-last"])
def test_documented_pairs(teacher: int, student: int, strategy: str) -> None:
    layer_map = LayerMap.build(strategy, student, teacher)
    assert list(layer_map.pairs) == EXPECTED[(teacher, student)][strategy]


def test_explicit_pairs_and_embeddings() -> None:
    layer_map = LayerMap.build("1:2, 2:4,3:6", 3, 6, embeddings=True)
    assert layer_map.pairs == ((0, 0), (1, 2), (2, 4), (3, 6))
    assert layer_map.covers_all_student_layers()
    assert not LayerMap.build("last", 3, 6).covers_all_student_layers()


@pytest.mark.parametrize(
    ("spec", "student", "teacher", "message"),
    [
        ("1:2,2:7", 2, 6, "teacher layer 7 is out of range"),
        ("4:2", 3, 6, "student layer 4 is out of range"),
        ("1:2,1:3", 3, 6, "appears twice"),
        ("1-2", 3, 6, "use one of"),
        ("uniform", 8, 6, "deeper than the teacher"),
        ("top", 7, 6, "deeper than the teacher"),
    ],
)
def test_rejects_bad_maps(spec: str, student: int, teacher: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        LayerMap.build(spec, student, teacher)


def test_named_strategies_are_monotone_for_many_shapes() -> None:
    for teacher in range(1, 25):
        for student in range(1, teacher + 1):
            for strategy in ("last", "top", "uniform", "uniform-last"):
                pairs = LayerMap.build(strategy, student, teacher).pairs
                assert [t for _, t in pairs] == sorted({t for _, t in pairs})
                assert pairs[-1][0] == student
