"""Golden loss values per transfer: seeded, one thread, compared with a tolerance.

Regenerate only on purpose (after an intended change to a loss), then review the diff:

    STUDENTPACK_REGEN_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from studentpack.distill.head_fit import new_head_like
from studentpack.transfer.base import Transfer
from studentpack.transfer.hidden import HiddenTransfer
from studentpack.transfer.layer_map import LayerMap
from studentpack.transfer.output import OutputTransfer
from studentpack.transfer.relations import RelationTransfer
from tests.tiny import make_bert
from tests.transfer_fixtures import features, masked, padded_batch

GOLDEN = Path(__file__).parent / "golden" / "transfers.json"
REGENERATE = os.environ.get("STUDENTPACK_REGEN_GOLDEN") == "1"


def compute_all() -> dict[str, float]:
    torch.set_num_threads(1)
    # a wide initialisation gives peaked attention relations, so the golden KLs are far from zero
    teacher = make_bert(layers=3, seed=0, init_range=0.2)
    student = make_bert(layers=2, seed=1, init_range=0.2)
    narrow = make_bert(layers=2, hidden=16, heads=2, intermediate=32, seed=2, init_range=0.2)
    ids, mask = padded_batch(4)
    batch = masked(ids, mask, seed=0)
    torch.manual_seed(3)
    t_head, s_head = new_head_like(teacher), new_head_like(student)
    torch.manual_seed(4)
    cases: dict[str, tuple[Transfer, torch.nn.Module]] = {
        "mha": (RelationTransfer(2, 3, 8), student),
        "mha_narrow": (RelationTransfer(2, 3, 16), narrow),
        "hs": (HiddenTransfer(LayerMap.build("uniform-last", 2, 3, embeddings=True), 32, 32, "mse"), student),
        "hs_cosine": (HiddenTransfer(LayerMap.build("top", 2, 3), 32, 32, "cosine"), student),
        "hs_projected": (HiddenTransfer(LayerMap.build("uniform", 2, 3), 16, 32, "mse"), narrow),
        "od": (OutputTransfer(2.0, 0.5), student),
    }
    values: dict[str, float] = {}
    with torch.no_grad():
        for case, (transfer, model) in cases.items():
            od = isinstance(transfer, OutputTransfer)
            s = features(model, transfer, "student", ids, mask, s_head if od else None, batch if od else None)
            t = features(teacher, transfer, "teacher", ids, mask, t_head if od else None, batch if od else None)
            for term, value in transfer(s, t).items():
                values[f"{case}/{term}"] = value.item()
    return values


def test_golden_values() -> None:
    values = compute_all()
    if REGENERATE:
        GOLDEN.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
        pytest.fail(f"golden values regenerated in {GOLDEN}; review the diff and rerun without the variable")
    golden = json.loads(GOLDEN.read_text())
    missing = sorted(set(values) - set(golden))
    assert not missing, f"no golden value for {missing}: regenerate on purpose"
    stale = sorted(set(golden) - set(values))
    assert not stale, f"golden values no longer produced: {stale}"
    for key, value in values.items():
        assert value == pytest.approx(golden[key], rel=1e-4, abs=1e-7), key
