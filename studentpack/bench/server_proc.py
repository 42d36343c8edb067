"""`studentpack serve` as a child process on a free loopback port: started, waited for, stopped cleanly."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from studentpack.ground.errors import UserError

_LISTENING = re.compile(r"listening on (http://\S+)")


class ServerProcess:
    """A running `studentpack serve`; `url` once it is ready, its output kept in `log_path`."""

    def __init__(self, models: dict[str, Path], options: list[str], log_path: Path) -> None:
        self.models = models
        self.log_path = log_path
        self.url = ""
        command = [sys.executable, "-m", "studentpack", "serve"]
        command += [f"{name}={path}" for name, path in models.items()]
        command += ["--host", "127.0.0.1", "--port", "0", *options]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._found = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._log.write(line)
            self._log.flush()
            match = _LISTENING.search(line)
            if match and not self.url:
                self.url = match.group(1)
                self._found.set()

    def wait_ready(self, timeout_s: float) -> str:
        """The base URL once /v2/health/ready answers 200; a clear error if the server died or hung."""
        deadline = time.monotonic() + timeout_s
        while not self._found.wait(0.1):
            self._check_alive()
            if time.monotonic() > deadline:
                raise UserError(f"the server did not open a port within {timeout_s:.0f} s (log: {self.log_path})")
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/v2/health/ready").status_code == 200:
                        return self.url
                time.sleep(0.25)
        raise UserError(f"the server's models did not load within {timeout_s:.0f} s (log: {self.log_path})")

    def _check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            self._reader.join(timeout=2)
            tail = _last_error(self.log_path)
            raise UserError(f"the server exited with code {code}: {tail} (log: {self.log_path})")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (the server drains and exits 0), then SIGKILL if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._log.close()


def _last_error(log_path: Path) -> str:
    try:
        lines = [line.strip() for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        return "no output"
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1]


@contextlib.contextmanager
def running_server(
    models: dict[str, Path], options: list[str], log_path: Path, timeout_s: float = 600.0
) -> Iterator[ServerProcess]:
    server = ServerProcess(models, options, log_path)
    try:
        server.wait_ready(timeout_s)
        yield server
    finally:
        server.stop()
