"""The real server on a free loopback port: the Triton client, plain HTTP, the remote encoder,
concurrency, overload, SIGTERM draining and CLI errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from studentpack.engines import open_model
from studentpack.engines.remote import parse_url
from tests.test_serve_app import LONG, save_classifier_dir
from tests.tiny import SENTENCES

STARTUP_S = 180.0  # bounded waits: a loaded 2-core machine imports torch slowly


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        return code


def start(args: list[str], wait_ready: bool = True) -> Server:
    """Start a server process with --port 0 and read the port it prints."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(  # from the repository root: `python -m tests.fake_server` must import
        args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=Path(__file__).parents[1]
    )
    log: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:  # until the process exits
            log.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match and not found.is_set():
                url.append(match[1])
                found.set()
        process.stderr.close()
        found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not found.wait(STARTUP_S) or not url:
        process.kill()
        process.wait()
        reader.join(30)
        raise AssertionError("server did not start:\n" + "".join(log))
    server = Server(process, url[0], log, reader)
    if wait_ready:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError("server exited:\n" + "".join(log))
            try:
                if httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        server.stop()
        raise AssertionError("server never became ready:\n" + "".join(log))
    return server


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "studentpack", "serve", *args]


def export_variant(src: Path, out: Path) -> Path:
    """An fp32 variant directory made by the export pipeline (model.onnx, tokenizer, export.json)."""
    pipeline = pytest.importorskip("studentpack.export.pipeline")
    from studentpack.export.options import ExportOptions

    options = ExportOptions(model=str(src), out=str(out), variants=("fp32",), threads=1)
    (result,) = pipeline.export_variants(options, log=lambda line: None)
    assert result.accepted, result.reason
    return Path(result.path)


@pytest.fixture(scope="module")
def dirs(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-e2e")
    return {
        "tiny": tiny_bert_dir,
        "cls": save_classifier_dir(root / "cls"),
        "onnx": export_variant(tiny_bert_dir, root / "onnx"),
    }


@pytest.fixture(scope="module")
def server(dirs: dict[str, Path]) -> Iterator[Server]:
    """`studentpack serve` over an ONNX variant, a torch encoder and a torch classifier."""
    models = [f"{name}={path}" for name, path in dirs.items()]
    server = start(cli(*models, "--port", "0", "--threads", "1", "--max-wait-ms", "20", "--log-level", "warning"))
    yield server
    assert server.stop() == 0, "".join(server.log)  # SIGTERM drains and exits 0


@pytest.fixture(scope="module")
def reference(dirs: dict[str, Path]) -> dict[str, Any]:
    return {name: open_model(str(path)) for name, path in dirs.items()}


def test_triton_client_health_metadata_and_infer(server: Server, reference: dict[str, Any]) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.address)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata()["name"] == "studentpack"
        for name, output in [("onnx", "embedding"), ("tiny", "embedding"), ("cls", "logits")]:
            assert client.is_model_ready(name)
            meta = client.get_model_metadata(name)
            assert meta["inputs"][0]["name"] == "text" and meta["outputs"][0]["name"] == output
            texts = SENTENCES[:6]
            text = triton.InferInput("text", [len(texts)], "BYTES")
            text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=False)
            result = client.infer(name, [text], outputs=[triton.InferRequestedOutput(output, binary_data=False)])
            got = result.as_numpy(output)
            model = reference[name]
            want = model.predict(texts) if output == "logits" else model.encode(texts)
            np.testing.assert_allclose(got, want, atol=1e-5)
        assert client.get_model_metadata("onnx")["parameters"]["providers"] == ["CPUExecutionProvider"]
        with pytest.raises(Exception, match="unknown model"):
            client.get_model_metadata("nope")
    finally:
        client.close()


def test_plain_http_results_equal_in_process(server: Server, reference: dict[str, Any]) -> None:
    texts = [*SENTENCES, LONG]
    for name in ("onnx", "tiny"):
        response = httpx.post(f"{server.url}/v1/embeddings", json={"model": name, "input": texts}, timeout=60)
        assert response.status_code == 200, response.text
        got = np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, reference[name].encode(texts), atol=1e-5)
    bad = httpx.post(f"{server.url}/v1/embeddings", content=b"{nope", timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"


def test_concurrent_requests_are_batched_and_correct(server: Server, reference: dict[str, Any]) -> None:
    texts = [f"{SENTENCES[i % len(SENTENCES)]} {i}" for i in range(32)]
    want = reference["onnx"].encode(texts, batch_size=1)  # direct, unbatched
    barrier = threading.Barrier(len(texts))

    def one(i: int, client: httpx.Client) -> np.ndarray:
        barrier.wait(30)
        response = client.post(f"{server.url}/v1/embeddings", json={"model": "onnx", "input": texts[i]})
        assert response.status_code == 200, response.text
        return np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        for _ in range(3):  # three bursts of 32 simultaneous requests
            with ThreadPoolExecutor(len(texts)) as pool:
                got = list(pool.map(lambda i: one(i, client), range(len(texts))))
            np.testing.assert_allclose(np.stack(got), want, atol=1e-5)
        metrics = client.get(f"{server.url}/metrics").text
    count = _sample(metrics, 'studentpack_batch_size_count{model="onnx"}')
    singles = _sample(metrics, 'studentpack_batch_size_bucket{le="1.0",model="onnx"}')
    assert count - singles >= 1, metrics  # some batches held several requests


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_remote_encoder_scores_a_served_model(server: Server, reference: dict[str, Any]) -> None:
    texts = [*SENTENCES, LONG]
    with open_model(f"{server.url}/v2/models/onnx") as remote:
        assert remote.max_length == 64 and remote.labels == []
        np.testing.assert_allclose(remote.encode(texts, batch_size=5), reference["onnx"].encode(texts), atol=1e-5)
        assert remote.truncated == 1
    with open_model(f"{server.url}/cls") as remote:
        assert remote.labels == ["negative", "positive"]
        got = remote.predict(SENTENCES[:4], batch_size=3, text_pairs=SENTENCES[4:8])
        np.testing.assert_allclose(got, reference["cls"].predict(SENTENCES[:4], text_pairs=SENTENCES[4:8]), atol=1e-5)
    from studentpack.ground.errors import UserError

    with pytest.raises(UserError, match="serves no model 'nope'"):
        open_model(f"{server.url}/v2/models/nope")
    with pytest.raises(UserError, match="name one in the URL"):
        open_model(server.url)


def test_parse_url_forms() -> None:
    from studentpack.ground.errors import UserError

    assert parse_url("http://h:1/v2/models/m") == ("http://h:1", "m")
    assert parse_url("https://h/prefix/v2/models/m/") == ("https://h/prefix", "m")
    assert parse_url("http://h:1/m") == ("http://h:1", "m")
    assert parse_url("http://h:1") == ("http://h:1", None)
    for bad in ("ftp://h/m", "http://h:1/a/b", "http://h:1/v1", "http://h:1/?model=m"):
        with pytest.raises(UserError):
            parse_url(bad)


def test_overload_and_sigterm_drain_on_a_real_socket(tmp_path: Path) -> None:
    """A fake model held at a gate: a full queue answers 503 at once; SIGTERM lets in-flight work finish."""
    gate = tmp_path / "gate"
    server = start([sys.executable, "-m", "tests.fake_server", "--gate", str(gate), "--max-queue", "2",
                    "--max-inputs", "2", "--grace-s", "60"])  # fmt: skip
    url = f"{server.url}/v1/embeddings"
    try:
        with ThreadPoolExecutor(2) as pool, httpx.Client(timeout=60) as client:
            first = pool.submit(client.post, url, json={"model": "fake", "input": "one"})
            _wait_metric(client, server, 'studentpack_batch_running{model="fake"}', 1)  # "one" is in the model
            second = pool.submit(client.post, url, json={"model": "fake", "input": ["two", "three"]})
            _wait_metric(client, server, 'studentpack_queue_depth{model="fake"}', 2)
            third = client.post(url, json={"model": "fake", "input": "four"})  # the queue is full
            assert third.status_code == 503 and third.headers["retry-after"] == "1"
            assert not gate.exists() and not first.done()
            server.process.send_signal(signal.SIGTERM)  # drain with "one" running and "two, three" queued
            with pytest.raises(httpx.HTTPError):  # no new connections once draining
                for _ in range(100):
                    httpx.get(f"{server.url}/v2/health/live", timeout=5)
                    time.sleep(0.05)
            assert server.process.poll() is None  # still finishing its work
            gate.touch()
            assert first.result(60).status_code == 200
            assert second.result(60).status_code == 200 and len(second.result().json()["data"]) == 2
        assert server.process.wait(60) == 0, "".join(server.log)
    finally:
        gate.touch()
        server.stop()


def _wait_metric(client: httpx.Client, server: Server, name: str, value: float) -> None:
    for _ in range(600):
        if _sample(client.get(f"{server.url}/metrics").text, name) >= value:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never reached {value}")


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=STARTUP_S)


def test_cli_refuses_bad_models_and_names(tmp_path: Path, tiny_bert_dir: Path) -> None:
    done = _run_cli(str(tmp_path / "missing"))
    assert done.returncode == 2 and "error: model not found" in done.stderr and "Traceback" not in done.stderr
    done = _run_cli(f"a={tiny_bert_dir}", f"a={tiny_bert_dir}")
    assert done.returncode == 2 and "two models are named 'a'" in done.stderr
    done = _run_cli(str(tiny_bert_dir), "--max-inputs", "5000")
    assert done.returncode == 2 and "max_inputs" in done.stderr


def test_cli_refuses_a_taken_port(tiny_bert_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _run_cli(str(tiny_bert_dir), "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2 and "cannot listen on 127.0.0.1" in done.stderr


def test_cli_refuses_cuda_without_a_gpu(dirs: dict[str, Path]) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA; the gpu tests cover it")
    for path in (dirs["onnx"], dirs["tiny"]):
        done = _run_cli(str(path), "--device", "cuda", "--port", "0")
        assert done.returncode == 2 and "error:" in done.stderr and "CUDA" in done.stderr, done.stderr
        assert "listening" not in done.stderr


def test_a_model_that_fails_to_load_stops_the_server_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "gpt"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "gpt2"}')
    done = _run_cli(str(bad), "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "listening on" in done.stderr and "error: model gpt:" in done.stderr and "gpt2" in done.stderr


@pytest.mark.gpu
def test_cuda_serving_uses_the_cuda_provider(dirs: dict[str, Path], reference: dict[str, Any]) -> None:
    server = start(cli(f"onnx={dirs['onnx']}", "--device", "cuda", "--port", "0", "--log-level", "warning"))
    try:
        meta = httpx.get(f"{server.url}/v2/models/onnx", timeout=30).json()
        assert meta["parameters"]["providers"][0] == "CUDAExecutionProvider"
        response = httpx.post(f"{server.url}/v1/embeddings", json={"model": "onnx", "input": SENTENCES}, timeout=60)
        got = np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, reference["onnx"].encode(SENTENCES), atol=1e-4)
    finally:
        assert server.stop() == 0


@pytest.mark.gpu
def test_cuda_serving_of_a_pytorch_directory_matches_the_cpu(dirs: dict[str, Path], reference: dict[str, Any]) -> None:
    server = start(cli(f"tiny={dirs['tiny']}", "--device", "cuda", "--port", "0", "--log-level", "warning"))
    try:
        meta = httpx.get(f"{server.url}/v2/models/tiny", timeout=30).json()
        assert str(meta["parameters"]["device"]).startswith("cuda"), meta
        response = httpx.post(f"{server.url}/v1/embeddings", json={"model": "tiny", "input": SENTENCES}, timeout=60)
        got = np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, reference["tiny"].encode(SENTENCES), atol=1e-4)  # fp32 on both
    finally:
        assert server.stop() == 0


def test_model_names_from_directories(tmp_path: Path) -> None:
    from studentpack.commands.serve import model_names
    from studentpack.ground.errors import UserError

    a, b = tmp_path / "mha-l3" / "onnx" / "int8", tmp_path / "hs-l3" / "onnx" / "int8"
    names = model_names([str(a), str(b), f"teacher={tmp_path / 'teacher' / 'onnx' / 'fp32'}"])
    assert list(names) == ["mha-l3-int8", "hs-l3-int8", "teacher"]
    assert list(model_names([str(tmp_path / "x" / "student")])) == ["student"]
    with pytest.raises(UserError, match="model name"):
        model_names(["bad name!=/tmp/x"])


def test_config_file_sets_and_flags(tmp_path: Path) -> None:
    from studentpack.cli import build_parser
    from studentpack.commands.serve import _config
    from studentpack.ground.errors import UserError

    file = tmp_path / "serve.yaml"
    file.write_text("max_batch: 8\nmax_wait_ms: 2\nport: 9000\n")
    args = build_parser().parse_args(
        ["serve", "m", "--config", str(file), "--set", "max_batch=16", "--set", "spin=true", "--port", "9100"]
    )
    config = _config(args)
    assert (config.max_batch, config.max_wait_ms, config.port, config.spin) == (16, 2.0, 9100, True)
    assert config.host == "127.0.0.1"
    with pytest.raises(UserError, match="unknown config key"):
        _config(build_parser().parse_args(["serve", "m", "--set", "batch=3"]))
    with pytest.raises(UserError, match="max_batch"):
        _config(build_parser().parse_args(["serve", "m", "--set", "max_batch=many"]))
