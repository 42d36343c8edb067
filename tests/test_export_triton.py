"""Triton model repository: config.pbtxt parses as Triton's ModelConfig and matches the ONNX graph."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def repository(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from studentpack.cli import main

    root = tmp_path_factory.mktemp("triton")
    args = ["export", str(tiny_bert_dir), "--onnx", "--out", str(root / "onnx"), "--variants", "fp32,int8-dynamic"]
    triton = ["--triton", str(root / "repo"), "--triton-max-batch", "16", "--triton-max-wait-ms", "2.5"]
    triton += ["--triton-instances", "2", "--triton-threads", "1", "--triton-env", "/env", "--max-length", "64"]
    assert main([*args, *triton, "--sample-texts", "8"]) == 0
    return root / "onnx", root / "repo"


_NP_TO_TRITON = {"tensor(int64)": "TYPE_INT64", "tensor(int32)": "TYPE_INT32", "tensor(float)": "TYPE_FP32"}


def test_config_round_trip_matches_the_graph(repository: tuple[Path, Path]) -> None:
    import onnxruntime as ort

    from studentpack.export.triton import load_model_config_proto, parse_config

    onnx_dir, repo = repository
    proto = load_model_config_proto()
    names = sorted(p.name for p in repo.iterdir() if p.is_dir())
    assert names == ["tiny-bert0_fp32", "tiny-bert0_fp32_ids", "tiny-bert0_int8-dynamic", "tiny-bert0_int8-dynamic_ids"]
    for name, variant in [("tiny-bert0_fp32_ids", "fp32"), ("tiny-bert0_int8-dynamic_ids", "int8-dynamic")]:
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
    hidden = parse_config((repo / "tiny-bert0_fp32_ids" / "config.pbtxt").read_text()).output
    assert [list(t.dims) for t in hidden] == [[-1, 32], [32]]


def test_text_model_takes_text_and_carries_the_serve_settings(repository: tuple[Path, Path]) -> None:
    from studentpack.export.triton import load_model_config_proto, parse_config
    from studentpack.ground.provenance import hash_directory

    onnx_dir, repo = repository
    proto = load_model_config_proto()
    config = parse_config((repo / "tiny-bert0_int8-dynamic" / "config.pbtxt").read_text())
    assert config.backend == "python" and config.max_batch_size == 16
    assert [(t.name, proto.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [
        ("text", "TYPE_STRING", [1])
    ]
    assert [(t.name, proto.DataType.Name(t.data_type), list(t.dims)) for t in config.output] == [
        ("embedding", "TYPE_FP32", [32])
    ]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2500  # --triton-max-wait-ms 2.5
    assert config.instance_group[0].count == 2 and config.instance_group[0].kind == proto.ModelInstanceGroup.KIND_CPU
    params = {k: v.string_value for k, v in config.parameters.items()}
    sha = hash_directory(onnx_dir / "int8-dynamic")  # what `studentpack serve` reports for the same variant
    assert params == {"max_length": "64", "source_sha256": sha, "pad_token_id": "0", "intra_op_threads": "1",
                      "EXECUTION_ENV_PATH": "/env", "one_text_per_call": "0"}  # tiny int8: batch-invariant  # fmt: skip
    version = repo / "tiny-bert0_int8-dynamic" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["export.json", "model.onnx", "model.py", "tokenizer.json"]
    assert (version / "model.onnx").read_bytes() == (onnx_dir / "int8-dynamic" / "model.onnx").read_bytes()
    assert "kind: InferenceService" in (repo / "kserve.yaml").read_text()


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
