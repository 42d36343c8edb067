from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests must not reach the network, and must be repeatable on 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer, 32-wide random BERT saved as a normal HF directory with a tokenizer."""
    from tests.tiny import save_bert_dir

    return save_bert_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small text corpus of the tiny vocabulary's sentences, a line each."""
    from tests.tiny import SENTENCES

    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text("\n".join(SENTENCES * 4) + "\n")
    return path


@pytest.fixture(autouse=True)
def _no_flush_to_zero_after_a_test() -> Iterator[None]:
    """`studentpack distill` sets flush-to-zero for its whole process (studentpack.ground.numerics); tests run it
    in this process, and hypothesis refuses to generate floats once subnormals cannot be represented."""
    yield
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths os.fsync was called on during the test, in order (the calls still go through)."""
    calls: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return calls
