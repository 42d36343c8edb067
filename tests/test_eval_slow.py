"""The real packaged teacher on the shared STS-B dev file (slow: loads a 90 MB model, encodes 3,000 sentences)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from studentpack.tasks import EvalConfig, evaluate

STSB_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsb" / "dev.tsv"
needs_data = pytest.mark.skipif(not STSB_DEV.is_file(), reason=f"shared data not found at {STSB_DEV}")


def _score(limit: int | None) -> float:
    cfg = EvalConfig(model="default", task="stsb", data=str(STSB_DEV), limit=limit, save=False)
    value = evaluate(cfg).result.value
    assert value is not None
    return value


@pytest.mark.slow
@needs_data
def test_teacher_slice_matches_sentence_transformers() -> None:
    """First 400 pairs: our Spearman equals sentence-transformers' (mean pooling, normalise, 128 tokens)."""
    st = pytest.importorskip("sentence_transformers")
    from scipy.stats import spearmanr

    from studentpack.text.sources import packaged_teacher_dir

    ours = _score(400)
    assert 85.0 < ours < 95.0  # the first rows are MSRvid captions, easier than the whole file
    with STSB_DEV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:400]
    model = st.SentenceTransformer(str(packaged_teacher_dir()), device="cpu")
    model.max_seq_length = 128
    a = model.encode([r["sentence1"] for r in rows], normalize_embeddings=True)
    b = model.encode([r["sentence2"] for r in rows], normalize_embeddings=True)
    theirs = 100 * spearmanr(np.sum(a * b, axis=1), [float(r["score"]) for r in rows]).statistic
    assert ours == pytest.approx(theirs, abs=0.05)


@pytest.mark.slow
@needs_data
def test_teacher_full_dev_is_81() -> None:
    """The independent reference point of ../shared/data/README.md: 81.0 Spearman x100 on the whole file."""
    assert _score(None) == pytest.approx(81.0, abs=0.5)
