"""Binary L2-regularised logistic regression on standardised features, in numpy.

The SST-2 probe's classifier. It minimises the objective of scikit-learn's
`make_pipeline(StandardScaler(), LogisticRegression(C=c))` (C times the summed log-loss plus half the
squared weights; the intercept is not penalised) by Newton's method, which reaches that unique
minimum in a handful of steps for the few hundred features of a sentence embedding, so the serving
side evaluates without scipy or scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studentpack.ground.errors import UserError


@dataclass(frozen=True)
class Probe:
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (D + 1,): coefficients, then the intercept
    classes: np.ndarray  # (2,): the label each side of the boundary stands for
    converged: bool

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = _design(x, self.mean, self.scale) @ self.weights  # (N, D + 1) @ (D + 1,) -> (N,)
        return self.classes[(scores > 0).astype(int)]


def _design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Standardised features with a column of ones for the intercept: (N, D) -> (N, D + 1)."""
    z = (np.asarray(x, np.float64) - mean) / scale
    return np.hstack([z, np.ones((len(z), 1))])


def _objective(design: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float) -> float:
    margins = design @ weights  # (N,)
    # log(1 + exp(-m)) for y=1 and log(1 + exp(m)) for y=0, without overflow
    loss = np.logaddexp(0.0, np.where(y == 1, -margins, margins)).sum()
    return float(c * loss + 0.5 * weights[:-1] @ weights[:-1])


def fit(x: np.ndarray, labels: np.ndarray, c: float = 1.0, max_steps: int = 100, tol: float = 1e-13) -> Probe:
    """(N, D) features, (N,) labels of exactly two classes -> the fitted probe."""
    classes = np.unique(labels)
    if len(classes) != 2:
        raise UserError(f"the probe separates two classes; these labels hold {len(classes)}")
    if c <= 0:
        raise UserError(f"the probe's C must be > 0, got {c:g}")
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature carries nothing; leave it at zero after centring
    design = _design(x, mean, scale)  # (N, D + 1)
    y = (np.asarray(labels) == classes[1]).astype(np.float64)  # (N,)
    penalty = np.ones(design.shape[1])
    penalty[-1] = 0.0  # the intercept is not penalised
    weights = np.zeros(design.shape[1])
    value = _objective(design, y, weights, c)
    converged = False
    for _ in range(max_steps):
        p = 1.0 / (1.0 + np.exp(-(design @ weights)))  # (N,)
        gradient = c * design.T @ (p - y) + penalty * weights  # (D + 1,)
        curvature = (p * (1.0 - p))[:, None] * design  # (N, D + 1)
        hessian = c * design.T @ curvature + np.diag(penalty)  # (D + 1, D + 1)
        hessian[-1, -1] += 1e-12  # separable data with one class per side: keep it invertible
        step = np.linalg.solve(hessian, gradient)
        decrement = float(gradient @ step)  # the Newton decrement, squared: the predicted fall, twice
        if decrement / 2 <= tol * max(1.0, abs(value)):
            converged = True
            break
        size = 1.0
        while size > 1e-10:  # backtracking: a full Newton step can overshoot far from the minimum
            trial = weights - size * step
            trial_value = _objective(design, y, trial, c)
            if trial_value <= value - 0.25 * size * decrement:
                break
            size /= 2
        weights, value = trial, trial_value
    return Probe(mean, scale, weights, classes, converged)
