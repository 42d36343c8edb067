"""Run an app under uvicorn on a socket we bind ourselves, and drain on SIGTERM/SIGINT.

- The socket is bound before anything slow, so a taken port is a one-line error and `port=0`
  gets a free port whose number is printed (`listening on http://HOST:PORT`).
- The first SIGTERM (or Ctrl-C) marks the server as draining (readiness 503, new requests 503),
  stops accepting connections, lets in-flight requests finish within `grace_s`, then stops the
  batchers and returns. The process exits 0; uvicorn's habit of re-raising the signal after a
  graceful stop (which would end the process with 143) is not kept. A second Ctrl-C stops
  waiting; a second SIGTERM changes nothing.
"""

from __future__ import annotations

import logging
import math
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from studentpack.ground.errors import UserError
from studentpack.serving.config import ServeConfig
from studentpack.serving.lifecycle import Lifecycle

log = logging.getLogger("studentpack.serve")


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            if sig == signal.SIGINT:  # a second Ctrl-C: stop waiting for in-flight work
                self.force_exit = True
            return
        self.lifecycle.begin_drain()
        self.should_exit = True


def uvicorn_config(app: Any, config: ServeConfig) -> uvicorn.Config:
    """http/loop 'auto' pick httptools and uvloop when installed (faster), else h11 and asyncio."""
    return uvicorn.Config(
        app,
        http="auto",
        loop="auto",
        lifespan="on",
        access_log=config.access_log,
        log_level=config.log_level,
        timeout_graceful_shutdown=math.ceil(config.grace_s),
        server_header=False,
        timeout_keep_alive=30,
    )


def serve(
    app: Any,
    config: ServeConfig,
    sock: socket.socket,
    announce: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> DrainingServer:
    """Serve until a signal (or a fatal load error) stops the server; returns the stopped server."""
    lifecycle: Lifecycle = app.state.lifecycle
    server = DrainingServer(uvicorn_config(app, config), lifecycle)

    def fatal(message: str) -> None:
        lifecycle.begin_drain()
        server.should_exit = True

    lifecycle.on_fatal = fatal
    announce(f"listening on {url_of(sock)}")
    server.run(sockets=[sock])
    return server
