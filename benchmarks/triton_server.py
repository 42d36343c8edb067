"""A real Triton Inference Server on loopback, from the `tritonserver` binary that the PyPI wheel
`nvidia-pytriton` carries, for tests and benchmarks against `studentpack export --triton`'s repository
(tests/test_triton_server.py loads this file by path; benchmarks/bench_triton.py imports it as a sibling).

    benchmarks/triton_setup.sh .triton        # once: the unpacked wheel and a numpy<2 environment
    with TritonServer(repo, ["teacher_int8-dynamic"], pytriton=".triton/pytriton") as server:
        server.url                            # http://127.0.0.1:PORT

What it takes to run outside NVIDIA's container: the Python backend's stub for this Python
version copied next to the backend, libpython on the library path, and the text model's packages
(numpy<2, onnxruntime, tokenizers) in the environment its config names (EXECUTION_ENV_PATH). The
ONNX Runtime backend is not in the wheel, so only the named (text) models are loaded, explicitly.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from studentpack.ground.errors import UserError

PYTRITON_ENV = "STUDENTPACK_PYTRITON"  # where the unpacked nvidia-pytriton wheel lies (holds tritonserver/)


def find_pytriton(path: str | Path | None = None) -> Path:
    """The unpacked wheel's `pytriton` directory: `path`, else $STUDENTPACK_PYTRITON, else ./.triton/pytriton."""
    candidates = [Path(p) for p in (path, os.environ.get(PYTRITON_ENV), ".triton/pytriton") if p]
    for candidate in candidates:
        for root in (candidate, candidate / "pytriton"):
            if (root / "tritonserver" / "bin" / "tritonserver").is_file():
                return root
    where = ", ".join(str(c) for c in candidates)
    raise UserError(f"no tritonserver binary under {where}; run benchmarks/triton_setup.sh (nvidia-pytriton's wheel)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TritonServer:
    """tritonserver serving `models` from `repo` on 127.0.0.1; stopped (SIGTERM) on exit."""

    def __init__(
        self, repo: Path, models: Sequence[str], pytriton: str | Path | None = None, startup_s: float = 180.0
    ) -> None:
        self.repo, self.models, self.startup_s = Path(repo), list(models), startup_s
        self.root = find_pytriton(pytriton)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path: Path | None = None
        self.failure_log = ""  # the log's tail when the server failed to start (its directory is gone then)
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="triton-")
        scratch = Path(self._scratch.name)
        backends = self._backends()
        server = self.root / "tritonserver"
        env = {**os.environ}
        libs = [str(sysconfig.get_config_var("LIBDIR") or ""), str(self.root.parent / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join([*libs, env.get("LD_LIBRARY_PATH", "")])
        command = [
            str(server / "bin" / "tritonserver"),
            f"--model-repository={self.repo}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in self.models),
            "--http-address=127.0.0.1",
            f"--http-port={self.port}",
            "--allow-grpc=false",
            "--allow-metrics=false",
            "--log-verbose=0",
        ]
        self.log_path = scratch / "tritonserver.log"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            self._wait_ready()
        except BaseException:
            tail = self.log_tail()
            self.stop()
            self.failure_log = tail
            raise

    def _backends(self) -> Path:
        """The wheel's backends, with this Python's stub beside the Python backend (the binaries find their
        libraries relative to where they lie, so they are used in place)."""
        backends = self.root / "tritonserver" / "backends"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = self.root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
        placed = backends / "python" / stub.name
        if not placed.is_file():
            if not stub.is_file():
                raise UserError(f"nvidia-pytriton has no Python backend stub for Python {version} ({stub})")
            shutil.copy2(stub, placed)
        for file in (placed, self.root / "tritonserver" / "bin" / "tritonserver"):
            file.chmod(file.stat().st_mode | 0o111)  # wheels do not keep the executable bit
        return backends

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise UserError(f"tritonserver exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise UserError(f"tritonserver was not ready within {self.startup_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(30)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
