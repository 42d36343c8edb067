"""The pipeline's time budget: how fast this machine is, what each unit should cost on it, and how many
distillation steps the students sized by the budget can have.

Why: the same quick preset took about 10 minutes on a 2-core AVX-512 VNNI machine and ran past 18 on a
2-core AVX2 one. So the pipeline first times the teacher's forward pass here (`calibrate`, about three
seconds), scales a cost model measured on a reference machine by the ratio, and then
- keeps every student whose steps are fixed (the recipe students: `budgeted` false) at its steps;
- gives the budgeted students the largest common share of their wanted steps that keeps the estimate
  of the whole run within `budget_minutes`, never fewer than each one's `min_steps`;
- drops budgeted students, the last first, when even their minimum does not fit, and says so.
The plan (the calibration, every estimate, the steps chosen and why) goes into pipeline.json and the
report, and a re-run of the same configuration reuses it, so nothing is retrained because a second
timing came out differently.

The cost model's figures are seconds on the reference machine (a 2-core AMD EPYC with AVX-512, VNNI and
BF16), measured by `benchmarks/pipeline_costs.py` (benchmarks/results/pipeline_costs.json).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------- the model

REFERENCE_CLASS = "AVX-512 + VNNI + BF16"  # the reference machine's CPU class
REFERENCE_PROBE_MS = 330.0  # its teacher forward, 16 x 128 tokens, 2 threads (median)
DISTILL_START_S = 8.0  # a distill child: interpreter, torch, teacher, corpus, tokenisation
CACHE_FILL_S_PER_ROW = 0.022  # the teacher over one 128-token row, once, when the cache is used
STEP_S_PER_LAYER = {"hs": 0.175, "mha": 0.23, "emb": 0.175}  # per student layer, teacher cached (16 x 128)
STEP_S_TEACHER = 0.33  # the teacher's forward, added to each step when it is not cached (OD)
STEP_S_OD_HEAD = 0.45  # OD: masking, MLM logits over the vocabulary, their KL and its backward, per step
HEAD_FIT_STEP_S = 0.42  # OD with a headless teacher: one step of fitting its MLM head
EXPORT_VARIANT_S = {  # building and gating one variant of a 3-layer student (scaled by export_seconds)
    "fp32": 2.7, "fused": 2.6, "int8-dynamic": 3.3, "int8-static": 8.0, "openvino": 0.8, "openvino-bf16": 0.8,
    "openvino-int8": 4.8, "fp16": 2.7,
}  # fmt: skip
EVAL_S = {"agreement": 8.0, "stsb": 12.0, "sst2": 20.0}  # one local evaluation of a 3-layer student
# one evaluation through the endpoint of a 3-layer exported variant: agreement also encodes the 1,000 texts
# with the served teacher; the labelled ones are the STS-B dev pairs and the SST-2 probe (4,000 + 872 texts)
SERVED_EVAL_S = {"agreement": 4.5, "stsb": 1.9, "sst2": 4.5}
SERVED_TORCH_SLOWER = 2.0  # a PyTorch directory behind the server, against an exported variant of the same depth
SERVE_START_S = 4.0
SERVE_S_PER_MODEL = 0.6
LOADTEST_OVERHEAD_S = 1.0  # per concurrency level: locust start, stats
REPORT_S = 5.0
# a static student (distill --method static): every vocabulary token through the teacher, then the teacher
# over the corpus's sentences (per 128-token row of the corpus) and the table's Adam steps
STATIC_VOCABULARY_S = 24.0
STATIC_CORPUS_S_PER_ROW = 0.023
STATIC_STEP_S = 0.033
STATIC_DEPTH = 0.1  # its evaluations' cost against a 3-layer student's (a lookup and a mean; tokenising stays)
# the allocation aims this far inside the budget: on the reference machine the timing at the start was off
# by up to 1.3x from what the run then did (other work on the host), and fixed units cannot be cut later
PLAN_MARGIN = 0.93


@dataclass(frozen=True)
class Calibration:
    probe_ms: float  # the teacher's forward on 16 x 128 tokens here (median)
    cpu_class: str
    threads: int
    reference_ms: float = REFERENCE_PROBE_MS
    reference_class: str = REFERENCE_CLASS

    @property
    def factor(self) -> float:
        """How many times slower than the reference machine this one runs the teacher."""
        return self.probe_ms / self.reference_ms


def calibrate(teacher_dir: Any, repeats: int = 10) -> Calibration:
    """Time the teacher's forward pass on a fixed 16 x 128 batch (seeded ids), after a warm-up (about
    4 s). Single runs on the reference machine ranged 300-470 ms: the median of ten steadies it."""
    import torch

    from studentpack.ground.isa import cpu_class
    from studentpack.ground.provenance import cpu_flags
    from studentpack.model import adapter
    from studentpack.text.sources import position_limit

    model = adapter.load_encoder(teacher_dir, role="teacher").eval()
    vocab, positions = int(model.config.vocab_size), position_limit(model.config.to_dict())
    # ordinary word pieces (past the special and unused ids), 128 tokens or the model's limit
    ids = torch.randint(min(1000, vocab // 2), vocab, (16, min(128, positions)),
                        generator=torch.Generator().manual_seed(0))  # (B, T)  # fmt: skip
    mask = torch.ones_like(ids)
    times = []
    with torch.no_grad():
        for index in range(repeats + 3):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            if index >= 3:
                times.append(time.perf_counter() - start)
    return Calibration(round(1000 * statistics.median(times), 1), cpu_class(cpu_flags()), torch.get_num_threads())


def distill_seconds(method: str, layers: int, steps: int, rows: int, fit_head_steps: int, cached: bool) -> float:
    """Reference seconds of one `studentpack distill` (16 x 128 rows per step)."""
    methods = method.split("+")
    per_step = layers * max(STEP_S_PER_LAYER.get(m, 0.175) for m in methods)
    fill = 0.0
    if "od" in methods:
        per_step += STEP_S_TEACHER + STEP_S_OD_HEAD
    elif cached:
        fill = rows * CACHE_FILL_S_PER_ROW
    else:
        per_step += STEP_S_TEACHER
    head = fit_head_steps * HEAD_FIT_STEP_S if "od" in methods else 0.0
    return DISTILL_START_S + fill + head + steps * per_step


def static_distill_seconds(steps: int, rows: int) -> float:
    """Reference seconds of one `studentpack distill --method static` (`rows`: the corpus in 128-token rows)."""
    training = rows * STATIC_CORPUS_S_PER_ROW + steps * STATIC_STEP_S if steps else 0.0
    return DISTILL_START_S + STATIC_VOCABULARY_S + training


def export_seconds(variants: tuple[str, ...], layers: int, speed_trial: bool) -> float:
    """Reference seconds of one `studentpack export` of a model of `layers` layers (384 wide).

    Fitted to the quick pipeline's exports on the reference machine: 2-, 3- and 6-layer models, five
    variants each, and a 3-layer one with two variants and no trial (benchmarks/pipeline_costs.py).
    """
    start = 4.5 + 0.5 * layers  # interpreter, load, trace to ONNX, tokenizer files
    work = sum(EXPORT_VARIANT_S.get(v, 4.0) for v in variants) * (0.3 + 0.7 * layers / 3)
    trial = (0.3 + 0.1 * layers) * len(variants) if speed_trial and len(variants) > 1 else 0.0  # one text at a time
    return start + work + trial


# ---------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Wanted:
    """What one student asks of the budget."""

    name: str
    steps: int
    budgeted: bool
    min_steps: int


@dataclass
class BudgetPlan:
    budget_s: float | None
    calibration: dict[str, Any] | None
    steps: dict[str, int]  # student -> steps it gets (the dropped ones are absent)
    dropped: list[str] = field(default_factory=list)
    share: float = 1.0  # the fraction of their wanted steps the budgeted students got
    estimate_s: float = 0.0  # the whole run, on this machine, by the cost model
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def allocate(
    wanted: list[Wanted], cost: Callable[[dict[str, int]], float], budget_s: float | None
) -> tuple[dict[str, int], list[str], float]:
    """(steps per kept student, dropped students, share of wanted steps) under `cost(steps) <= budget_s`.

    `cost` is the estimated wall time of the whole run with those students at those steps. Fixed
    students always get their steps; budgeted ones share one fraction of theirs (at least min_steps
    each), and the last budgeted student is dropped while even the minimum does not fit.
    """
    kept = list(wanted)

    def steps_at(share: float) -> dict[str, int]:
        return {w.name: w.steps if not w.budgeted else max(w.min_steps, min(w.steps, round(w.steps * share)))
                for w in kept}  # fmt: skip

    if budget_s is None or cost(steps_at(1.0)) <= budget_s:
        return steps_at(1.0), [], 1.0
    dropped: list[str] = []
    while True:
        if cost(steps_at(0.0)) <= budget_s:
            low, high = 0.0, 1.0  # the largest share that fits, to a step's precision
            for _ in range(30):
                middle = (low + high) / 2
                low, high = (middle, high) if cost(steps_at(middle)) <= budget_s else (low, middle)
            return steps_at(low), dropped, round(low, 3)
        budgeted = [w for w in kept if w.budgeted]
        if not budgeted:  # the fixed students alone overrun: run them anyway, the plan says so
            return steps_at(1.0), dropped, 1.0
        kept.remove(budgeted[-1])
        dropped.append(budgeted[-1].name)
