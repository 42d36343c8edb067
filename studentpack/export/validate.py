"""Gates that an exported graph must pass to be handed over.

- Parity (fp32, fused): output names, then shapes, then values against the PyTorch model, on padded
  batches of mixed lengths at several batch sizes and sequence lengths (1 and the model maximum
  included); max abs difference on real (non-padding) tokens. Typed errors say which step failed.
- Accuracy (int8, fp16): against the fp32 graph through the encode protocol, on held-out text:
  sentence cosine (mean and worst) for embedding models, label agreement for classifiers, Pearson
  correlation of the outputs (against the mean-cosine threshold) for 1-output regression heads,
  and optionally a task metric (e.g. STS-B Spearman x100) delta.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from studentpack.export.onnx import GraphFacts
from studentpack.ground.errors import UserError
from studentpack.tasks.metrics import row_cosines

Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Gates:
    """Gate thresholds (the defaults: parity 1e-4 absolute, mean cosine 0.99, worst 0.95, labels 99% alike)."""

    max_abs: float = 1e-4
    min_mean_cosine: float = 0.99
    min_worst_cosine: float = 0.95
    min_label_agreement: float = 0.99
    max_metric_delta: float = 1.0  # task-metric points (x100 scale)
    # regression heads: mean |reference - variant| as a fraction of the reference outputs' spread (std);
    # correlation alone passes a variant whose outputs are 2x + 0.5
    max_relative_error: float = 0.05

    def __post_init__(self) -> None:
        if not self.max_abs >= 0 or not self.max_metric_delta >= 0 or not self.max_relative_error >= 0:
            raise UserError("--max-abs, --max-metric-delta and --max-relative-error must be >= 0")
        for name in ("min_mean_cosine", "min_worst_cosine", "min_label_agreement"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} must lie in [-1, 1], got {getattr(self, name)}")


class GateError(Exception):
    """A variant failed a gate; `figures` holds what was measured (it goes into export.json)."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


class ParityError(GateError):
    """The ONNX graph does not compute what the PyTorch model computes."""


class OutputNamesError(ParityError):
    pass


class OutputShapeError(ParityError):
    pass


class OutputValueError(ParityError):
    pass


class AccuracyError(GateError):
    """A reduced-precision variant strays too far from the fp32 graph."""


@dataclass(frozen=True)
class Case:
    batch: int
    length: int


def parity_cases(max_length: int) -> list[Case]:
    """Batch sizes 1, 4 and 8 by lengths 1, 23 and the model maximum (8 x max is skipped: 4 x max suffices)."""
    lengths = sorted({1, min(23, max_length), max_length})
    cases = [Case(b, t) for t in lengths for b in (1, 4)]
    cases.append(Case(8, min(64, max_length)))
    return cases


def parity_feeds(info: GraphFacts, case: Case, seed: int = 0) -> Feeds:
    """Random token ids, row 0 full length, other rows padded at random lengths in [1, length]."""
    rng = np.random.default_rng(seed + 1000 * case.batch + case.length)
    low = min(5, info.vocab_size - 1)  # skip the first ids (special tokens in BERT vocabularies)
    ids = rng.integers(low, info.vocab_size, size=(case.batch, case.length), dtype=np.int64)
    lengths = rng.integers(1, case.length + 1, size=case.batch)
    lengths[0] = case.length
    mask = (np.arange(case.length)[None, :] < lengths[:, None]).astype(np.int64)  # (B, T)
    feeds = {"input_ids": ids * mask, "attention_mask": mask}
    if "token_type_ids" in info.input_names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return feeds


def torch_runner(module: Any, info: GraphFacts) -> Runner:
    """The PyTorch reference: the same wrapped module that was exported, on the same feeds."""
    import torch

    def run(feeds: Feeds) -> dict[str, np.ndarray]:
        tensors = [torch.from_numpy(feeds[name]) for name in info.input_names]
        with torch.no_grad():
            out = module(*tensors)
        values = out if isinstance(out, tuple) else (out,)
        return {name: v.float().numpy() for name, v in zip(info.output_names, values, strict=True)}

    return run


def _max_abs(name: str, got: np.ndarray, want: np.ndarray, mask: np.ndarray) -> float:
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if name == "token_embeddings":
        diff = diff[mask.astype(bool)]  # real tokens only: (N_real, H)
    return float(diff.max()) if diff.size else 0.0


def check_parity(
    reference: Runner,
    candidate: Runner,
    candidate_outputs: Sequence[str],
    info: GraphFacts,
    atol: float,
    cases: Sequence[Case] | None = None,
) -> dict[str, Any]:
    """Names, then shapes, then values; returns the figures or raises a typed ParityError."""
    expected = list(info.output_names)
    figures: dict[str, Any]
    if list(candidate_outputs) != expected:
        figures = {"expected_outputs": expected, "outputs": list(candidate_outputs)}
        raise OutputNamesError(f"graph outputs {list(candidate_outputs)} != expected {expected}", figures)
    results: list[dict[str, Any]] = []
    for case in cases or parity_cases(info.max_length):
        feeds = parity_feeds(info, case)
        want, got = reference(feeds), candidate(feeds)
        for name in expected:
            if got[name].shape != want[name].shape:
                figures = {"case": vars(case), "output": name, "shape": got[name].shape, "expected": want[name].shape}
                raise OutputShapeError(f"{name} has shape {got[name].shape}, expected {want[name].shape}", figures)
        diffs = {name: _max_abs(name, got[name], want[name], feeds["attention_mask"]) for name in expected}
        results.append({"batch": case.batch, "length": case.length, "max_abs": diffs})
    worst = max(max(r["max_abs"].values()) for r in results)
    figures = {"max_abs": worst, "atol": atol, "cases": results, "passed": worst <= atol}
    if not worst <= atol:
        raise OutputValueError(f"max abs difference {worst:.3g} > {atol:g} on real tokens", figures)
    return figures


MIXED_BATCH = 32  # texts in the one batch that mixes the sample's shortest and longest inputs


def mixed_batch(texts: Sequence[str]) -> list[str]:
    """Up to MIXED_BATCH texts spread from the shortest to the longest, short and long interleaved.

    Encoders batch texts of similar length together, so padding barely shows in the main comparison;
    run as one batch, these put most rows next to much longer ones (a masking bug shows up here).
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    if len(order) > MIXED_BATCH:
        order = [order[round(j * (len(order) - 1) / (MIXED_BATCH - 1))] for j in range(MIXED_BATCH)]
    return [texts[i] for i in order[::2] + order[1::2][::-1]]


def check_accuracy(
    reference: Any,
    candidate: Any,
    texts: Sequence[str],
    gates: Gates,
    task_score: Callable[[Any], float] | None = None,
    task_name: str = "",
) -> dict[str, Any]:
    """Compare two encoders (encode protocol) on `texts`; returns the figures or raises AccuracyError."""
    figures: dict[str, Any] = {"reference": reference.description, "texts": len(texts)}
    failures = []
    mixed = mixed_batch(texts)
    one_batch = len(mixed)
    if len(reference.labels) == 1:  # a regression head (e.g. STS-B cross-encoder): argmax means nothing
        want = np.concatenate([reference.predict(texts)[:, 0], reference.predict(mixed, batch_size=one_batch)[:, 0]])
        got = np.concatenate([candidate.predict(texts)[:, 0], candidate.predict(mixed, batch_size=one_batch)[:, 0]])
        r = float(np.corrcoef(want, got)[0, 1]) if want.std() > 0 and got.std() > 0 else float(np.allclose(want, got))
        error = float(np.abs(want - got).mean() / max(float(want.std()), 1e-6))  # in units of the outputs' spread
        figures.update(pearson=r, max_abs_output=float(np.abs(want - got).max()), min_pearson=gates.min_mean_cosine,
                       relative_error=error, max_relative_error=gates.max_relative_error)  # fmt: skip
        if not r >= gates.min_mean_cosine:
            failures.append(f"output correlation {r:.4f} < {gates.min_mean_cosine}")
        if not error <= gates.max_relative_error:
            failures.append(f"mean output error {error:.4f} of the outputs' spread > {gates.max_relative_error}")
    elif reference.labels:
        want, got = reference.predict(texts), candidate.predict(texts)
        agreement = float((want.argmax(axis=1) == got.argmax(axis=1)).mean())
        want_one, got_one = (
            reference.predict(mixed, batch_size=one_batch),
            candidate.predict(mixed, batch_size=one_batch),
        )
        figures["mixed_batch_label_agreement"] = float((want_one.argmax(axis=1) == got_one.argmax(axis=1)).mean())
        agreement_one = figures["mixed_batch_label_agreement"]
        if not agreement_one >= gates.min_label_agreement:
            failures.append(
                f"label agreement in one mixed-length batch {agreement_one:.4f} < {gates.min_label_agreement}"
            )
        figures.update(
            label_agreement=agreement,
            max_abs_logit=float(np.abs(want - got).max()),
            min_label_agreement=gates.min_label_agreement,
        )
        if not agreement >= gates.min_label_agreement:
            failures.append(f"label agreement {agreement:.4f} < {gates.min_label_agreement}")
    else:
        cos = row_cosines(reference.encode(texts), candidate.encode(texts))
        in_one_batch = row_cosines(
            reference.encode(mixed, batch_size=one_batch), candidate.encode(mixed, batch_size=one_batch)
        )
        figures["mixed_batch_worst_cosine"] = float(in_one_batch.min())
        if not in_one_batch.min() >= gates.min_worst_cosine:
            failures.append(
                f"worst cosine in one mixed-length batch {in_one_batch.min():.4f} < {gates.min_worst_cosine}"
            )
        figures.update(
            mean_cosine=float(cos.mean()),
            worst_cosine=float(cos.min()),
            p01_cosine=float(np.quantile(cos, 0.01)),
            min_mean_cosine=gates.min_mean_cosine,
            min_worst_cosine=gates.min_worst_cosine,
        )
        if not cos.mean() >= gates.min_mean_cosine:
            failures.append(f"mean cosine {cos.mean():.4f} < {gates.min_mean_cosine}")
        if not cos.min() >= gates.min_worst_cosine:
            failures.append(f"worst cosine {cos.min():.4f} < {gates.min_worst_cosine}")
    if task_score is not None:
        ref_score, score = task_score(reference), task_score(candidate)
        delta = ref_score - score
        figures["task"] = {
            "name": task_name,
            "reference": ref_score,
            "score": score,
            "delta": delta,
            "max_delta": gates.max_metric_delta,
        }
        if not delta <= gates.max_metric_delta:
            failures.append(f"{task_name} drops {delta:.2f} points > {gates.max_metric_delta}")
    figures["passed"] = not failures
    if failures:
        raise AccuracyError("; ".join(failures), figures)
    return figures
