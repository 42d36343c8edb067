"""Typed config loading: files, --set overrides, unknown keys and wrong types."""

from __future__ import annotations

from pathlib import Path

import pytest

from studentpack.config import apply_sets, build, load_file, to_dict
from studentpack.distill.config import DistillConfig
from studentpack.ground.errors import UserError


def test_yaml_toml_json_agree(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("method: hs\nstudent:\n  layers: 4\ncorpus: [x.txt]\nlr: 0.001\n")
    (tmp_path / "a.toml").write_text('method = "hs"\ncorpus = ["x.txt"]\nlr = 0.001\n[student]\nlayers = 4\n')
    (tmp_path / "a.json").write_text('{"method": "hs", "student": {"layers": 4}, "corpus": ["x.txt"], "lr": 0.001}')
    configs = [build(DistillConfig, load_file(tmp_path / f"a.{ext}")) for ext in ("yaml", "toml", "json")]
    assert configs[0] == configs[1] == configs[2]
    assert configs[0].student.layers == 4 and configs[0].corpus == ("x.txt",)


def test_set_overrides_nested_and_parses_scalars() -> None:
    data = apply_sets({"student": {"layers": 2}}, ["student.hidden=256", "lr=3e-4", "hs_embeddings=true"])
    config = build(DistillConfig, data)
    assert (config.student.layers, config.student.hidden, config.lr, config.hs_embeddings) == (2, 256, 3e-4, True)


def test_round_trip_through_plain_data() -> None:
    config = DistillConfig(method="od", corpus=("a", "b"))
    assert build(DistillConfig, to_dict(config)) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stepz": 3}, "unknown config key stepz"),
        ({"student": {"layer": 3}}, "unknown config key student.layer"),
        ({"steps": "3"}, "steps: expected int"),
        ({"steps": True}, "steps: expected int"),
        ({"lr": "fast"}, "lr: expected float"),
        ({"method": "magic"}, "is not one of"),
        ({"corpus": "one.txt"}, "corpus: expected a list"),
        ({"student": 3}, "expected a mapping"),
    ],
)
def test_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build(DistillConfig, data)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_file(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="does not parse"):
        load_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_file(tmp_path / "list.yaml")
    (tmp_path / "x.ini").write_text("[a]\n")
    with pytest.raises(UserError, match=r"use \.yaml"):
        load_file(tmp_path / "x.ini")


def test_yaml_cannot_construct_objects(tmp_path: Path) -> None:
    (tmp_path / "evil.yaml").write_text("teacher: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="does not parse"):
        load_file(tmp_path / "evil.yaml")
