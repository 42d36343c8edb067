"""A text gets the same vector whatever shares its batch: measured at export, kept by the server.

ONNX Runtime's dynamic INT8 takes one activation scale per batch, so its vectors move with their
batch-mates; the server runs such a variant one text per call unless told otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from studentpack.batch_invariance import INVARIANT_COSINE, PROBE_TEXTS, worst_batch_cosine
from studentpack.ground.errors import UserError


def test_an_encoder_that_depends_on_its_batch_is_caught() -> None:
    rng = np.random.default_rng(0)
    table = {text: rng.normal(size=8) for text in PROBE_TEXTS}

    def invariant(texts: Sequence[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts])

    def batch_scaled(texts: Sequence[str]) -> np.ndarray:  # a per-batch offset, as a shared scale would give
        rows = np.stack([table[t] for t in texts])
        return rows + 0.05 * rows.max()

    assert worst_batch_cosine(invariant) == pytest.approx(1.0)
    assert worst_batch_cosine(batch_scaled) < INVARIANT_COSINE


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from studentpack.export.options import ExportOptions
    from studentpack.export.pipeline import export_variants
    from tests.tiny import save_bert_dir

    root = tmp_path_factory.mktemp("invariance")
    # weights large enough for activations to differ between texts (the default tiny model's 0.02 init
    # gives every text nearly the same activation range, and so the same per-batch scale)
    model = save_bert_dir(root / "model", hidden=64, intermediate=128, init_range=0.2)
    options = ExportOptions(model=str(model), out=str(root / "onnx"), variants=("fp32", "int8-dynamic"), threads=1,
                            speed_trial=False)  # fmt: skip
    results = export_variants(options, log=lambda line: None)
    assert all(r.accepted for r in results), [r.reason for r in results]
    return {r.variant: Path(r.path) for r in results}


def test_the_export_records_each_variants_batch_invariance(variants: dict[str, Path]) -> None:
    import json

    fp32 = json.loads((variants["fp32"] / "export.json").read_text())["batch_invariance"]
    int8 = json.loads((variants["int8-dynamic"] / "export.json").read_text())["batch_invariance"]
    assert fp32["invariant"] and fp32["worst_cosine"] >= INVARIANT_COSINE
    assert not int8["invariant"] and int8["worst_cosine"] < INVARIANT_COSINE


def _vectors(path: Path, **config: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(model parameters, each probe text alone, the probe texts in one request) through the real app."""
    from studentpack.serving.backends import load_backend
    from tests.test_serve_app import embed, serving

    async def main() -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        async with serving({"m": load_backend(path, "cpu", 128, 1)}, max_wait_ms=50.0, **config) as client:
            meta = (await client.get("/v2/models/m")).json()["parameters"]
            alone = [(await embed(client, [t], model="m")).json()["data"][0]["embedding"] for t in PROBE_TEXTS]
            together = (await embed(client, list(PROBE_TEXTS), model="m")).json()["data"]
            return meta, np.asarray(alone), np.asarray([row["embedding"] for row in together])

    return asyncio.run(main())


def _worst(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def test_the_server_runs_a_batch_dependent_variant_one_text_per_call(variants: dict[str, Path]) -> None:
    meta, alone, together = _vectors(variants["int8-dynamic"])
    assert meta["batching"] == "per-text" and meta["batch_cosine"] < INVARIANT_COSINE
    np.testing.assert_array_equal(alone, together)  # bit for bit: each text ran alone both times


def test_batching_it_anyway_is_what_the_measure_warns_of(variants: dict[str, Path]) -> None:
    meta, alone, together = _vectors(variants["int8-dynamic"], batch_dependent="batch")
    assert meta["batching"] == "batched (batch-dependent)"
    assert _worst(alone, together) < INVARIANT_COSINE


def test_an_invariant_variant_is_batched(variants: dict[str, Path]) -> None:
    meta, alone, together = _vectors(variants["fp32"])
    assert meta["batching"] == "batched" and meta["batch_cosine"] >= INVARIANT_COSINE
    assert _worst(alone, together) >= INVARIANT_COSINE


def test_refuse_does_not_serve_it(variants: dict[str, Path]) -> None:
    from studentpack.serving.app import create_app
    from studentpack.serving.backends import load_backend
    from studentpack.serving.config import ServeConfig
    from tests.fake_server import lifespan

    async def main() -> str:
        app = create_app({"m": load_backend(variants["int8-dynamic"], "cpu", 128, 1)},
                         ServeConfig(batch_dependent="refuse"))  # fmt: skip
        async with lifespan(app):
            await app.state.lifecycle.wait_loaded()
            return str(app.state.lifecycle.error)

    assert "depend on their batch-mates" in asyncio.run(main())


def test_a_bad_policy_is_a_clear_error() -> None:
    from studentpack.serving.config import ServeConfig

    with pytest.raises(UserError, match="batch_dependent must be one of"):
        ServeConfig(batch_dependent="sometimes")
