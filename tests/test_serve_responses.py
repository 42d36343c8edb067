"""Float tensors in JSON bodies come back bit-exact, whichever writer the install has."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studentpack.serving import responses
from studentpack.serving.validation import ApiError

WRITERS = [responses._float_json_fallback]
if "orjson" in vars(responses):
    WRITERS.append(responses._float_json_orjson)


def _awkward_floats() -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = [
        rng.normal(size=384),
        rng.normal(size=64) * 1e-30,  # tiny, near the float32 subnormal range
        rng.normal(size=64) * 1e30,
        np.array([0.0, -0.0, 1.0, -1.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45]),
    ]
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__)
def test_float_json_parses_back_to_the_same_float32(writer) -> None:  # type: ignore[no-untyped-def]
    values = _awkward_floats()
    if writer is responses._float_json_fallback:  # "%.9g" writes -0.0 as "-0", which JSON reads as 0
        values = values[values.view(np.uint32) != np.float32(-0.0).view(np.uint32)]
    back = np.array(json.loads(writer(values)), dtype=np.float32)
    assert back.shape == values.shape
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))  # bit for bit, -0.0 included


def test_float_array_flattens_and_refuses_non_finite() -> None:
    rows = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    assert json.loads(responses.float_array(rows)) == pytest.approx((rows.ravel()).tolist())
    with pytest.raises(ApiError, match="not finite"):
        responses.float_array(np.array([1.0, np.nan], dtype=np.float32))


def test_embeddings_body_is_valid_json_with_rows_in_order() -> None:
    rows = _awkward_floats()[:8].reshape(2, 4)
    body = json.loads(responses.embeddings_body(rows, "m", 7, base64_format=False))
    assert [item["index"] for item in body["data"]] == [0, 1]
    got = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    np.testing.assert_array_equal(got, rows)
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
