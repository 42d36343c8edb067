"""The report's accuracy score: each labelled metric as % of the teacher, and one score per row.

With labelled results the score is the mean % of the teacher over the first two labelled metrics the
teacher has; without, the label-free recall@10 of the teacher's nearest neighbours (a recall, not a % of
the teacher), judged against the recall that BENCHMARKS.md ties to 97% of the teacher on labelled data.
"""

from __future__ import annotations

import statistics
from typing import Any

from studentpack.bench.report_rows import Row
from studentpack.tasks.agreement import RECALL_AT_10_FOR_97

# labelled metrics that make the score, best first; the score averages the first two the teacher has
LABELLED_METRICS = ("stsb/zeroshot", "sst2/probe", "stsb/finetune", "sst2/finetune")
LABEL_FREE_METRIC = "agreement/zeroshot"  # its recall_at_10, when no labelled metric is there
LABEL_FREE_VALUE = "recall_at_10"
ACCURACY_TARGET = 97.0  # % of the teacher that a student must keep to count as the headline's "best"


def _teacher_reference(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """The teacher's results per task/mode: its PyTorch directory's, else any teacher variant's."""
    teachers = sorted((r for r in rows if r.role == "teacher"), key=lambda r: r.model.variant != "torch")
    reference: dict[str, dict[str, Any]] = {}
    for row in reversed(teachers):
        reference.update(row.metrics)
    return reference


def score_rows(rows: list[Row]) -> dict[str, Any]:
    """% of the teacher per labelled metric, and each row's score; returns what the score is."""
    reference = _teacher_reference(rows)
    for row in rows:
        for key, entry in row.metrics.items():
            ref = reference.get(key)
            same_data = ref is not None and ref.get("data") == entry.get("data") and ref.get("n") == entry.get("n")
            if key in LABELLED_METRICS and same_data and ref and ref.get("value") and entry.get("value") is not None:
                entry["pct_of_teacher"] = round(100.0 * entry["value"] / ref["value"], 2)
    labelled = [m for m in LABELLED_METRICS if m in reference][:2]
    if labelled:
        for row in rows:
            pcts = [row.metrics.get(m, {}).get("pct_of_teacher") for m in labelled]
            known = [float(p) for p in pcts if p is not None]
            row.score = round(statistics.fmean(known), 2) if len(known) == len(pcts) else None
            row.floor = round(min(known), 2) if row.score is not None else None
        return {"metrics": labelled, "kind": "pct_of_teacher", "label": "% of the teacher",
                "target": ACCURACY_TARGET, "target_source": "97% of the teacher on every labelled metric"}  # fmt: skip
    label_free = reference.get(LABEL_FREE_METRIC, {}).get("metric") == LABEL_FREE_VALUE
    for row in rows:
        entry = row.metrics.get(LABEL_FREE_METRIC) or {}
        if label_free and entry.get("metric") == LABEL_FREE_VALUE and entry.get("value") is not None:
            row.score = row.floor = round(float(entry["value"]), 2)
    if not label_free:
        return {"metrics": [], "kind": None, "label": "no metric shared with the teacher", "target": None,
                "target_source": None}  # fmt: skip
    return {"metrics": [LABEL_FREE_METRIC], "kind": "label_free",
            "label": "recall@10 of the teacher's nearest neighbours, held-out English (%)",
            "target": RECALL_AT_10_FOR_97,
            "target_source": "the recall@10 at which distilled students kept 97% of the teacher on STS-B and "
                              "the SST-2 probe (BENCHMARKS.md, A label-free accuracy)"}  # fmt: skip
