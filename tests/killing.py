"""SIGKILL a command-line run from outside: after some seconds, or once its run directory shows a moment.

The run is a real `python -m studentpack ...` child; what it has done is read from the files it writes
(log.jsonl lines, checkpoint directories that appear whole under their final names), the way a user's
`kill -9` or an out-of-memory kill would find it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from studentpack.distill.checkpoint import list_checkpoints
from studentpack.distill.rundir import LOG

POLL_S = 0.002  # a tiny student's step takes ~30 ms: the kill lands within a step of the moment


def studentpack(*args: str) -> list[str]:
    return [sys.executable, "-m", "studentpack", *args]


def logged_steps(run: Path) -> list[int]:
    """The steps of log.jsonl's complete lines (a line being appended is not one yet)."""
    try:
        text = (run / LOG).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line)["step"] for line in text.splitlines(keepends=True) if line.endswith("\n")]


def last_logged_step(run: Path) -> int:
    steps = logged_steps(run)
    return steps[-1] if steps else 0


def checkpoint_steps(run: Path) -> list[int]:
    return [step for step, _ in list_checkpoints(run)]


def last_checkpoint_step(run: Path) -> int:
    steps = checkpoint_steps(run)
    return steps[-1] if steps else 0


def kill_when(cmd: list[str], moment: Callable[[], bool], timeout_s: float = 300) -> str:
    """Start `cmd`, SIGKILL it as soon as `moment()` holds, and return its stderr. Fails the test when
    the command exits (or `timeout_s` passes) before the moment came."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as err:
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env) as child:
            deadline = time.monotonic() + timeout_s
            while not moment():
                code = child.poll()
                if code is not None or time.monotonic() > deadline:
                    child.kill()
                    child.wait()
                    err.seek(0)
                    raise AssertionError(f"the run ended ({code}) before the moment to kill it: {err.read()[-3000:]}")
                time.sleep(POLL_S)
            child.send_signal(signal.SIGKILL)
            assert child.wait(60) == -signal.SIGKILL
        err.seek(0)
        return err.read()


def run_until_killed(cmd: list[str], after_s: float) -> int | None:
    """Start `cmd`, SIGKILL it after `after_s` seconds; its exit code if it finished first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) as child:
        try:
            return child.wait(after_s)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait(60)
            return None
