"""Triton model repository: config.pbtxt parses as Triton's ModelConfig and matches the ONNX graph."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def repository(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from studentpack.cli import main

    root = tmp_path_factory.mktemp("triton")
    args = ["export", str(tiny_bert_dir), "--onnx", "--out", str(root / "onnx"), "--variants", "fp32,int8-dynamic"]
    assert main([*args, "--triton", str(root / "repo"), "--triton-max-batch", "16", "--sample-texts", "8"]) == 0
    return root / "onnx", root / "repo"


_NP_TO_TRITON = {"tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(float)": "TYPE_FP32"}


def test_config_round_trip_matches_the_graph(repository: tuple[Path, Path]) -> None:
    import onnxruntime as ort

    from studentpack.export.triton import load_model_config_proto, parse_config

    onnx_dir, repo = repository
    proto = load_model_config_proto()
    names = sorted(p.name for p in repo.iterdir())
    assert names == ["tiny-bert0_fp32", "tiny-bert0_int8-dynamic"]
    for name, variant in zip(names, ["fp32", "int8-dynamic"], strict=True):
        assert (repo / name / "1" / "model.onnx").read_bytes() == (onnx_dir / variant / "model.onnx").read_bytes()
        config = parse_config((repo / name / "config.pbtxt").read_text())
        assert config.name == name and config.backend == "onnxruntime" and config.max_batch_size == 16
        assert config.HasField("dynamic_batching")
        assert config.instance_group[0].kind == proto.ModelInstanceGroup.KIND_CPU
        session = ort.InferenceSession(str(onnx_dir / variant / "model.onnx"), providers=["CPUExecutionProvider"])
        for declared, actual in [(config.input, session.get_inputs()), (config.output, session.get_outputs())]:
            assert [t.name for t in declared] == [a.name for a in actual]
            for tensor, arg in zip(declared, actual, strict=True):
                assert proto.DataType.Name(tensor.data_type) == _NP_TO_TRITON[arg.type]
                want = [d if isinstance(d, int) else -1 for d in arg.shape[1:]]  # batch axis implied
                assert list(tensor.dims) == want
    hidden = parse_config((repo / names[0] / "config.pbtxt").read_text()).output
    assert [list(t.dims) for t in hidden] == [[-1, 32], [32]]


def test_bad_config_text_does_not_parse() -> None:
    from google.protobuf import text_format

    from studentpack.export.triton import parse_config

    with pytest.raises(text_format.ParseError):
        parse_config('name: "x"\nmax_batch_size: 8\nnot_a_field: 1\n')
    with pytest.raises(text_format.ParseError):
        parse_config('input [ { name: "a" data_type: TYPE_NOPE dims: [ -1 ] } ]')


def test_existing_repository_needs_overwrite(repository: tuple[Path, Path], tiny_bert_dir: Path, tmp_path: Path):
    from studentpack.cli import main

    _, repo = repository
    assert main(["export", str(tiny_bert_dir), "--onnx", "--out", str(tmp_path / "o"), "--triton", str(repo)]) == 2
    assert not (tmp_path / "o").exists()
