"""What the gates are given besides the graphs: the accuracy sample (with long and other-genre texts), the
calibration texts, and the optional task scorer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from studentpack.export import presets
from studentpack.ground.errors import UserError
from studentpack.ground.provenance import hash_texts

if TYPE_CHECKING:
    from studentpack.export.options import ExportOptions

LONG_TEXTS = 16  # inputs cut at the maximum length, in every accuracy gate
OTHER_GENRE_TEXTS = 32
_TASKS = ("stsb",)


def gate_texts(opts: ExportOptions, variants: tuple[str, ...]) -> tuple[list[str], list[str], dict[str, Any]]:
    """Accuracy sample and calibration texts; disjoint when they come from the same corpus."""
    from studentpack.text.corpus import load_corpus
    from studentpack.text.sources import EMBEDDED_CORPUS

    needs_sample = any(v in presets.ACCURACY_VARIANTS for v in variants)
    needs_calibration = any(v in presets.CALIBRATED_VARIANTS for v in variants)
    sample_spec = opts.sample or EMBEDDED_CORPUS
    calibration_spec = opts.calibration or EMBEDDED_CORPUS
    sample: list[str] = []
    calibration: list[str] = []
    corpora: dict[str, Any] = {}
    if needs_sample:
        texts = load_corpus([sample_spec]).texts
        order = np.random.default_rng(0).permutation(len(texts))
        sample = [texts[i] for i in order[: opts.sample_texts]]
        extra = gate_extras(sample, opts)
        corpora["sample"] = {"source": sample_spec, "texts": len(sample), **extra.describe}
        sample = sample + extra.texts
        corpora["sample"]["sha256"] = hash_texts(sample)
        if needs_calibration and calibration_spec == sample_spec:
            calibration = [texts[i] for i in order[opts.sample_texts : opts.sample_texts + opts.calibration_texts]]
    if needs_calibration:
        if not calibration:
            texts = load_corpus([calibration_spec]).texts
            order = np.random.default_rng(1).permutation(len(texts))
            calibration = [texts[i] for i in order[: opts.calibration_texts]]
        if not calibration:
            raise UserError(f"calibration corpus {calibration_spec} leaves no texts after the accuracy sample")
        corpora["calibration"] = {
            "source": calibration_spec,
            "texts": len(calibration),
            "sha256": hash_texts(calibration),
        }
    return sample, calibration, corpora


@dataclass(frozen=True)
class Extras:
    texts: list[str]
    describe: dict[str, Any]


def gate_extras(sample: list[str], opts: ExportOptions) -> Extras:
    """Texts the accuracy gates see beside the sample: inputs near the maximum length (sample texts joined
    until they must be cut) and, for the default sample, another genre of embedded text."""
    from studentpack.text.corpus import EMBEDDED, load_corpus

    long: list[str] = []
    current: list[str] = []
    for text in sample:  # consecutive sample texts joined until they hold more words than tokens fit
        current.append(text)
        if sum(len(t.split()) for t in current) > opts.max_length:
            long.append(" ".join(current))
            current = []
        if len(long) == LONG_TEXTS:
            break
    other: list[str] = []
    other_spec = None
    if opts.sample is None:
        from studentpack.text.sources import EMBEDDED_CORPUS

        other_spec = next(spec for spec in EMBEDDED if spec != EMBEDDED_CORPUS)
        texts = load_corpus([other_spec]).texts
        order = np.random.default_rng(2).permutation(len(texts))
        other = [texts[i] for i in order[:OTHER_GENRE_TEXTS]]
    return Extras(long + other, {"long_texts": len(long), "other_genre": other_spec, "other_genre_texts": len(other)})


def task_scorer(opts: ExportOptions, config: dict[str, Any]) -> Callable[[Any], float] | None:
    """`--eval-task stsb --eval-data FILE`: STS-B Spearman x100 through studentpack.tasks."""
    if opts.eval_task is None:
        if opts.eval_data:
            raise UserError("--eval-data needs --eval-task")
        return None
    if opts.eval_task not in _TASKS:
        raise UserError(f"unknown --eval-task {opts.eval_task!r}; export supports {', '.join(_TASKS)}")
    if not opts.eval_data:
        raise UserError("--eval-task needs --eval-data (a local file: export downloads nothing)")
    from studentpack.engines import is_classifier_config

    if is_classifier_config(config):
        raise UserError("--eval-task stsb scores sentence embeddings; this model is a classifier")
    from studentpack.tasks import data as task_data
    from studentpack.tasks import sets, stsb

    pairs = sets.stsb_pairs(task_data.read_table(task_data.locate(opts.eval_data, "eval")), sets.Columns())
    if opts.eval_limit:
        pairs = sets.head(pairs, opts.eval_limit)

    def score(encoder: Any) -> float:
        return 100.0 * float(stsb.zeroshot(encoder, pairs)["spearman"])

    return score
