"""SST-2: accuracy of a logistic-regression probe on frozen embeddings, or of a classifier's own logits."""

from __future__ import annotations

from typing import Any

import numpy as np

from studentpack.ground.errors import UserError
from studentpack.tasks import logistic
from studentpack.tasks.metrics import accuracy
from studentpack.tasks.sets import LabeledSet

LABELS = ["negative", "positive"]


def probe(
    encoder: Any,
    train: LabeledSet,
    dev: LabeledSet,
    c: float = 1.0,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit standardise + L2 logistic regression on train embeddings; accuracy on dev embeddings."""
    if len(np.unique(train.labels)) < 2:
        raise UserError(f"{train.source}: the probe needs both classes in the train rows")
    before = encoder.truncated
    x_train = encoder.encode(train.texts, batch_size=batch_size, progress=progress)  # (N_train, D)
    train_truncated = encoder.truncated - before
    x_dev = encoder.encode(dev.texts, batch_size=batch_size, progress=progress)  # (N_dev, D)
    clf = logistic.fit(x_train, train.labels, c=c)
    metrics = {
        "accuracy": accuracy(clf.predict(x_dev), dev.labels),
        "train_accuracy": accuracy(clf.predict(x_train), train.labels),
    }
    details = {
        "probe": f"StandardScaler + LogisticRegression(C={c:g})",
        "probe_converged": clf.converged,
        "train_truncated": train_truncated,
    }
    return metrics, details


def predict(classifier: Any, dev: LabeledSet, batch_size: int = 32, progress: bool = False) -> dict[str, float]:
    """Accuracy of argmax over a classifier's logits; column i is label i."""
    if len(classifier.labels) < 2:
        raise UserError(f"{classifier.description} has {len(classifier.labels)} output; sst2 needs 2 classes")
    logits = np.asarray(classifier.predict(dev.texts, batch_size=batch_size, progress=progress))  # (N, C)
    return {"accuracy": accuracy(logits.argmax(axis=1), dev.labels)}
