"""`studentpack loadtest`: real locust (in its own process) against a real server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from studentpack.bench.loadtest import LoadtestOptions, run_loadtest
from studentpack.bench.server_proc import ServerProcess, running_server
from studentpack.cli import main
from studentpack.ground.errors import UserError
from tests.tiny import SENTENCES


@pytest.fixture(scope="module")
def server(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server({"tiny": tiny_bert_dir}, ["--threads", "1", "--max-wait-ms", "2"], log, 180) as proc:
        yield proc


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(SENTENCES * 3))
    return path


def _check_level(level: dict, duration: float) -> None:
    lat = level["latency_ms"]
    assert level["failures"] == 0 and level["ok"] == level["requests"] > 0
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert level["warmup_requests"] > 0  # the warm-up ran and was left out
    assert level["seconds"] <= duration + 0.5  # the duration bound held
    assert level["client_cpu"]["cores_used"] > 0


def test_levels_against_a_real_server(server: ServerProcess, texts: Path, tmp_path: Path) -> None:
    options = LoadtestOptions(url=server.url, model="tiny", users=(1, 3), duration_s=1.5, warmup_s=0.5,
                              texts=str(texts), pool=20, out=str(tmp_path / "bench"))  # fmt: skip
    result = run_loadtest(options, log=lambda line: None)
    saved = json.loads((tmp_path / "bench" / "loadtest.json").read_text())
    assert saved["schema"] == "studentpack.loadtest/1" and saved["failures"] == 0
    assert [lv["users"] for lv in saved["levels"]] == [1, 3]
    for level in saved["levels"]:
        _check_level(level, 1.5)
        assert level["server"]["available"] and level["server"]["batches"] > 0
    # exact latencies, not locust's whole milliseconds
    assert any(lv["latency_ms"]["p50"] != round(lv["latency_ms"]["p50"]) for lv in saved["levels"])
    assert saved["target"]["endpoint"] == "embeddings" and len(saved["target"]["info"]["sha256"]) == 64
    assert saved["texts"]["source"] == str(texts) and saved["machine"]["cpu_count"]
    assert saved["best"]["users"] in (1, 3) and result["saved_to"].endswith("loadtest.json")
    assert saved["versions"]["locust"]


def test_oip_infer_with_several_texts_per_request_and_a_request_bound(server: ServerProcess, texts: Path) -> None:
    options = LoadtestOptions(url=f"{server.url}/v2/models/tiny", endpoint="infer", users=(2,), duration_s=30,
                              warmup_s=0.3, max_requests=25, texts=str(texts), texts_per_request=4)  # fmt: skip
    level = run_loadtest(options, log=lambda line: None)["levels"][0]
    assert level["stopped_by"] == "requests" and level["seconds"] < 30
    assert 25 <= level["requests"] <= 25 + 2  # the bound, plus what was in flight
    assert level["texts_per_s"] == pytest.approx(4 * level["ok"] / level["seconds"], rel=1e-2)
    assert level["server"]["texts"] >= 4 * 25


def test_wrong_endpoint_or_model_is_a_clear_error(server: ServerProcess) -> None:
    with pytest.raises(UserError, match="serves no model 'nope'"):
        run_loadtest(LoadtestOptions(url=server.url, model="nope"), log=lambda line: None)
    with pytest.raises(UserError, match="--endpoint embeddings fits it"):
        run_loadtest(LoadtestOptions(url=server.url, endpoint="classify"), log=lambda line: None)
    with pytest.raises(UserError, match="cannot reach"):
        run_loadtest(LoadtestOptions(url="http://127.0.0.1:9"), log=lambda line: None)


class _JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class _Broken(_JsonHandler):
    """Lists one embedding model, then answers every embedding request 500 (or a short body)."""

    short = False

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(200, {"data": [{"id": "m", "kind": "embedding", "state": "ready"}]})
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).short:
            self._send(200, {"data": []})  # no result for the text sent
        else:
            self._send(500, {"error": "boom"})


@pytest.fixture()
def broken() -> Iterator[tuple[str, type[_Broken]]]:
    handler = type("Handler", (_Broken,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_failed_requests_make_the_command_exit_1(broken: tuple[str, type[_Broken]], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    url, handler = broken
    args = ["loadtest", url, "--users", "2", "--duration", "0.5", "--warmup", "0.2", "--out", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "request(s) failed" in err
    level = json.loads((tmp_path / "loadtest.json").read_text())["levels"][0]
    assert level["failures"] == level["requests"] > 0 and set(level["failures_by_status"]) == {"500"}
    assert main([*args, "--allow-failures"]) == 0
    handler.short = True  # a 200 without one result per text is a failure too
    assert main(args) == 1
    level = json.loads((tmp_path / "loadtest.json").read_text())["levels"][0]
    assert level["failures"] > 0 and "0 results for 1 texts" in level["failure_examples"][0]


def test_bad_flags_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["loadtest", "http://127.0.0.1:1", "--users", "0,4"])
    assert "positive" in capsys.readouterr().err
    assert main(["loadtest", "ftp://x"]) == 2
    assert "expected http(s)" in capsys.readouterr().err


def test_cpu_pinning_splits_only_where_there_are_cores_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    from studentpack.ground import cpus

    monkeypatch.setattr(cpus, "usable_cpus", lambda: [0, 1])
    assert cpus.split_for_load_test() is None  # 2 cores: the server needs both
    monkeypatch.setattr(cpus, "usable_cpus", lambda: [0, 1, 2, 3, 4, 5])
    assert cpus.split_for_load_test() == ((0, 1, 2, 3, 4), (5,))
    assert cpus.parse_cpu_list("3,0-1") == (0, 1, 3)
    with pytest.raises(UserError, match="not CPUs this process may use"):
        cpus.check_cpus((7,), "--cpus")


def test_serve_refuses_cpus_it_cannot_use(tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tiny_bert_dir), "--cpus", "4096"]) == 2
    assert "--cpus [4096]" in capsys.readouterr().err
    assert main(["loadtest", "http://127.0.0.1:1", "--client-cpus", "4096"]) == 2


class _OpenAIShaped(_JsonHandler):
    """Answers as OpenAI's API documents /v1/models and /v1/embeddings: no OIP routes, no `state` field."""

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            entry = {"id": "text-embedding-3-small", "object": "model", "created": 1686935002, "owned_by": "openai"}
            self._send(200, {"object": "list", "data": [entry]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.6, 0.8]} for i in range(len(texts))]
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})


def test_an_openai_style_server_is_measured_as_a_foreign_server(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIShaped)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        args = ["loadtest", url, "--endpoint", "embeddings", "--model", "text-embedding-3-small", "--users", "1,2"]
        assert main([*args, "--duration", "0.6", "--warmup", "0.2", "--out", str(tmp_path)]) == 0
        saved = json.loads((tmp_path / "loadtest.json").read_text())
        assert saved["target"]["server"] == "openai-compatible" and saved["target"]["endpoint"] == "embeddings"
        assert saved["target"]["info"]["owned_by"] == "openai"
        assert all(level["ok"] == level["requests"] > 0 for level in saved["levels"])
        # without --model the only listed model is taken, and the endpoint follows the listing
        assert (
            main(["loadtest", url, "--users", "1", "--duration", "0.4", "--warmup", "0.1", "--out", str(tmp_path)]) == 0
        )
        assert json.loads((tmp_path / "loadtest.json").read_text())["target"]["path"] == "/v1/embeddings"
    finally:
        httpd.shutdown()
        httpd.server_close()
