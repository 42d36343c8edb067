"""The numpy Spearman and logistic probe agree with the scipy and scikit-learn they replace."""

from __future__ import annotations

import numpy as np
import pytest

from studentpack.ground.errors import UserError
from studentpack.tasks import logistic
from studentpack.tasks.metrics import ranks, spearman


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 12, 300).astype(float)  # many ties, as gold STS scores have
    y = x + rng.normal(0, 3, 300)
    assert np.array_equal(ranks(x), rankdata(x))
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize(("seed", "c"), [(0, 1.0), (1, 0.05), (2, 20.0)])
def test_probe_reaches_scikit_learns_minimum(seed: int, c: float) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 24)) * rng.uniform(0.1, 5, 24) + rng.normal(size=24)  # (N, D), uneven scales
    x[:, 3] = 2.0  # a constant column
    labels = np.where(x[:, :5].sum(axis=1) + rng.normal(0, 2, 400) > x[:, :5].sum(axis=1).mean(), 7, 3)
    ours = logistic.fit(x, labels, c=c)
    theirs = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, tol=1e-10)).fit(x, labels)
    model = theirs[-1]
    assert ours.converged
    assert np.allclose(ours.weights[:-1], model.coef_[0], atol=1e-5)
    assert ours.weights[-1] == pytest.approx(model.intercept_[0], abs=1e-5)
    assert np.array_equal(ours.predict(x), theirs.predict(x))


def test_probe_refuses_other_than_two_classes() -> None:
    with pytest.raises(UserError, match="two classes"):
        logistic.fit(np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2]))
