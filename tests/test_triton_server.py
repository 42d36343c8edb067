"""`studentpack export --triton`'s text model on a real Triton server (the tritonserver binary of the
nvidia-pytriton wheel, set up by benchmarks/triton_setup.sh), checked with the official tritonclient
against `studentpack serve` on the same variant, and scored by `studentpack eval URL`.

Skipped, and said so, where the binary or its environment is not set up (`.triton/` or
$STUDENTPACK_PYTRITON and $STUDENTPACK_TRITON_ENV)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from studentpack.ground.errors import UserError
from tests.benchmark_scripts import load_benchmark
from tests.tiny import SENTENCES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = Path(os.environ.get("STUDENTPACK_TRITON_ENV", ROOT / ".triton" / "env"))


@pytest.fixture(scope="module")
def triton_server() -> ModuleType:
    """benchmarks/triton_server.py (benchmarks/ holds scripts, not a package), loaded from its file."""
    return load_benchmark("triton_server")


@pytest.fixture(scope="module")
def exported(
    tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory, triton_server: ModuleType
) -> tuple[Path, Path]:
    from studentpack.cli import main

    try:
        triton_server.find_pytriton(os.environ.get("STUDENTPACK_PYTRITON") or ROOT / ".triton" / "pytriton")
    except UserError as exc:
        pytest.skip(f"no Triton here: {exc}")
    if not (ENV / "bin" / "python").is_file():
        pytest.skip(f"no Python-backend environment at {ENV} (benchmarks/triton_setup.sh makes one)")
    root = tmp_path_factory.mktemp("triton-real")
    args = ["export", str(tiny_bert_dir), "--onnx", "--out", str(root / "onnx"), "--variants", "fp32"]
    args += ["--triton", str(root / "repo"), "--triton-env", str(ENV), "--triton-threads", "1", "--no-speed-trial"]
    assert main(args) == 0
    return root / "onnx" / "fp32", root / "repo"


@pytest.fixture(scope="module")
def triton(exported: tuple[Path, Path], triton_server: ModuleType) -> Iterator[Any]:
    with triton_server.TritonServer(exported[1], ["tiny-bert0_fp32"], pytriton=ROOT / ".triton" / "pytriton") as server:
        yield server


@pytest.fixture(scope="module")
def ours(exported: tuple[Path, Path]) -> Iterator[Any]:
    from tests.test_serve_e2e import cli, start

    server = start(cli(f"tiny-bert0_fp32={exported[0]}", "--port", "0", "--threads", "1", "--log-level", "warning"))
    yield server
    assert server.stop() == 0


MIXED = [*SENTENCES, "a", "the film " * 40, " ", "ünïcödé text, and an emoji 🎬"]


def _infer(address: str, texts: list[str], model: str = "tiny-bert0_fp32") -> np.ndarray:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=address)
    tensor = triton_http.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode("utf-8")] for t in texts], dtype=object))
    result = client.infer(model, [tensor], outputs=[triton_http.InferRequestedOutput("embedding")])
    return np.asarray(result.as_numpy("embedding"), dtype=np.float32)


def test_one_client_gets_the_same_embeddings_from_triton_and_studentpack_serve(triton: Any, ours: Any) -> None:
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=triton.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("tiny-bert0_fp32")
    from_triton = _infer(triton.url.removeprefix("http://"), MIXED)  # mixed lengths, one batch
    from_ours = _infer(ours.address, MIXED)  # the same client code against studentpack serve
    assert from_triton.shape == from_ours.shape == (len(MIXED), 32)
    assert np.abs(from_triton - from_ours).max() <= 1e-4
    assert (from_triton * from_ours).sum(axis=1).min() >= 0.9999


def test_a_batch_dependent_variant_agrees_between_triton_and_serve(
    exported: tuple[Path, Path], triton_server: ModuleType, tmp_path: Path
) -> None:
    """int8-dynamic takes one activation scale per batch: both servers run it one text per call, so one
    multi-text request gets the same vectors from each, and each text the vector it gets alone."""
    from studentpack.cli import main
    from tests.test_serve_e2e import cli, start
    from tests.tiny import save_bert_dir

    # weights large enough for the texts' activation ranges to differ (the 0.02 init of the usual tiny model
    # gives every batch the same scale, and no dependence to catch)
    model = save_bert_dir(tmp_path / "dep", hidden=64, intermediate=128, init_range=0.2)
    args = ["export", str(model), "--onnx", "--out", str(tmp_path / "onnx"), "--variants", "int8-dynamic"]
    args += ["--triton", str(tmp_path / "repo"), "--triton-env", str(ENV), "--triton-threads", "1", "--no-speed-trial"]
    assert main(args) == 0
    name = "dep_int8-dynamic"
    ours = start(cli(f"{name}={tmp_path / 'onnx' / 'int8-dynamic'}", "--port", "0", "--threads", "1"))
    try:
        with triton_server.TritonServer(tmp_path / "repo", [name], pytriton=ROOT / ".triton" / "pytriton") as triton:
            from_triton = _infer(triton.url.removeprefix("http://"), MIXED, name)
        from_ours = _infer(ours.address, MIXED, name)
        alone = np.concatenate([_infer(ours.address, [text], name) for text in MIXED])
    finally:
        assert ours.stop() == 0
    assert (from_triton * from_ours).sum(axis=1).min() >= 0.9999
    assert (alone * from_triton).sum(axis=1).min() >= 0.9999


def test_batches_of_mixed_lengths_and_sizes(triton: Any) -> None:
    address = triton.url.removeprefix("http://")
    whole = _infer(address, MIXED)
    for size in (1, 3, 7):
        parts = np.concatenate([_infer(address, MIXED[i : i + size]) for i in range(0, len(MIXED), size)])
        np.testing.assert_allclose(parts, whole, atol=1e-5)  # padding to each batch's longest changes nothing


def test_a_bad_input_gets_tritons_error(triton: Any) -> None:
    import tritonclient.http as triton_http
    from tritonclient.utils import InferenceServerException

    client = triton_http.InferenceServerClient(url=triton.url.removeprefix("http://"))
    wrong_type = triton_http.InferInput("text", [1, 1], "INT32")
    wrong_type.set_data_from_numpy(np.array([[1]], dtype=np.int32))
    with pytest.raises(InferenceServerException, match="BYTES"):
        client.infer("tiny-bert0_fp32", [wrong_type])
    wrong_name = triton_http.InferInput("sentence", [1, 1], "BYTES")
    wrong_name.set_data_from_numpy(np.array([[b"x"]], dtype=object))
    with pytest.raises(InferenceServerException, match="sentence"):
        client.infer("tiny-bert0_fp32", [wrong_name])
    with pytest.raises(InferenceServerException, match="empty string"):  # refused, as studentpack serve does
        _infer(triton.url.removeprefix("http://"), ["fine", ""])
    assert client.is_server_live()  # and the server carries on
    assert _infer(triton.url.removeprefix("http://"), ["still here"]).shape == (1, 32)


def test_eval_scores_triton_through_the_same_code(triton: Any, exported: tuple[Path, Path], capsys: Any) -> None:
    from tests.test_eval_support import run_json, sentence_pairs, stsb_tsv

    pairs = sentence_pairs(24)
    data = stsb_tsv(exported[1].parent / "dev.tsv", [(a, b, float(i % 5)) for i, (a, b) in enumerate(pairs)])
    url = f"{triton.url}/v2/models/tiny-bert0_fp32"
    served = run_json(capsys, url, "--task", "stsb", "--data", str(data), "--no-save")
    local = run_json(capsys, str(exported[0]), "--task", "stsb", "--data", str(data), "--no-save")
    assert served["value"] == pytest.approx(local["value"], abs=1e-6)


def test_the_server_names_itself_and_the_variant_it_runs(triton: Any, exported: tuple[Path, Path]) -> None:
    """What lets `studentpack report` put Triton's load test beside studentpack serve's for the same files."""
    from studentpack.engines.remote import open_remote
    from studentpack.ground.provenance import hash_directory

    with open_remote(f"{triton.url}/v2/models/tiny-bert0_fp32") as encoder:
        assert encoder.sha256 == hash_directory(exported[0])
        assert encoder.served_info.get("device") == "cpu"


def test_loadtest_against_triton_records_the_server_and_the_files(
    triton: Any, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    import json

    from studentpack.cli import main
    from studentpack.ground.provenance import hash_directory

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES) + "\n")
    args = ["loadtest", triton.url, "--model", "tiny-bert0_fp32", "--endpoint", "infer", "--users", "1"]
    assert main([*args, "--duration", "1", "--warmup", "0", "--texts", str(texts), "--out", str(tmp_path / "lt")]) == 0
    target = json.loads((tmp_path / "lt" / "loadtest.json").read_text())["target"]
    assert target["server"] == "triton"
    assert target["info"]["sha256"] == hash_directory(exported[0]) and target["info"]["device"] == "cpu"
