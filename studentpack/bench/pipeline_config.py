"""PipelineConfig: the whole chain's settings as one frozen dataclass, with the quick preset as defaults.

The defaults are the "quick" preset, sized to finish within `budget_minutes` on a 2-core CPU of any
class (AVX2 included; bench/budget.py):
- hs-l3, the student `studentpack distill` makes on its own defaults (HS, sentences isolated, the
  full recipe): the one worth deploying, never cut by the budget;
- hs-l2, the same recipe on two layers;
- mha-l3 and od-l3, the paper's other two transfers, at the steps the budget leaves (equal for both);
- static, Model2Vec's table of token vectors trained on the corpus (about a minute): the far, fast end
  of the frontier, served as it is (no export) and left out of a cuda run (it is served on CPU only);
each transformer exported to every CPU variant, the fastest one that passes its gate served beside the teacher,
load-tested at two concurrency levels and scored without labels by how well it retrieves the
teacher's nearest neighbours on held-out English. `examples/full.yaml` is the long version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from studentpack.ground.errors import UserError

STATIC = "static"  # the method name of a static student (studentpack.distill.config.STATIC, not imported: torch)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$")


@dataclass(frozen=True)
class StudentPlan:
    name: str  # the run directory under `out`, and the served model's name prefix
    method: str = "hs"
    layers: int = 3
    hidden: int | None = None  # None: the teacher's width
    settings: dict[str, Any] = field(default_factory=dict)  # any other `studentpack distill` config keys
    steps: int | None = None  # None: the pipeline's `steps`, else distill's default
    # sized by the time budget (fewer steps, or dropped last-first when even min_steps does not fit)
    budgeted: bool = False
    min_steps: int = 1

    @property
    def static(self) -> bool:
        """A table of token vectors (`distill --method static`): no steps, no export, served as it is."""
        return self.method == STATIC

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in ("teacher", "report", "logs"):
            raise UserError(f"student name {self.name!r}: letters, digits, '.', '_', '-'; not teacher/report/logs")
        if (self.steps is not None and self.steps < 1) or self.min_steps < 1:
            raise UserError(f"student {self.name}: steps and min_steps must be at least 1")


def _default_students() -> tuple[StudentPlan, ...]:
    return (
        StudentPlan("hs-l3", "hs"),  # distill's defaults: the recipe, never cut
        StudentPlan("hs-l2", "hs", layers=2, budgeted=True, min_steps=100),
        # the comparison: MiniLMv2's relations and the output distribution (its MLM head, which
        # all-MiniLM-L6-v2 lacks, fitted briefly), at the steps the budget leaves
        StudentPlan("mha-l3", "mha", budgeted=True, min_steps=40),
        StudentPlan("od-l3", "od", settings={"fit_head_steps": 60}, budgeted=True, min_steps=40),
        StudentPlan("static-d256", STATIC),  # where a user who needs only speed would stop: a fixed minute
    )


@dataclass(frozen=True)
class ServeSettings:
    threads: int = 0  # intra-op threads per model; 0: the runtime's default
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_length: int = 128


@dataclass(frozen=True)
class LoadSettings:
    users: tuple[int, ...] = (1, 8)
    duration_s: float = 6.0
    warmup_s: float = 1.5
    texts_per_request: int = 1
    pool: int = 1000


@dataclass(frozen=True)
class EvalSettings:
    agreement_texts: int = 1000  # held-out English sentences for the label-free measure (all of them)
    # also score each student's PyTorch directory in-process (the served variants are always scored
    # through their endpoint, which is what the report's rows and headline use)
    local: bool = False
    limit: int | None = None  # eval examples per labelled task (None: all of the dev split)
    probe_train: int = 4000  # SST-2 probe training rows
    batch_size: int = 32


@dataclass(frozen=True)
class PipelineConfig:
    out: str = "runs/pipeline"
    teacher: str | None = None  # None: the packaged all-MiniLM-L6-v2
    corpus: tuple[str, ...] = ()  # empty: the embedded corpus
    data: str | None = None  # a directory holding stsb/ and sst2/ (dev.* and train.*); None: agreement only
    device: str = "cpu"  # cpu | cuda
    students: tuple[StudentPlan, ...] = field(default_factory=_default_students)
    steps: int | None = None  # distillation steps of every student without its own; None: distill's default
    # the whole run's target wall time on this machine (installation not included); budgeted students
    # are sized to it from a timing taken at the start. None: every student gets its steps
    budget_minutes: float | None = 12.0
    # seconds this machine takes per second of the reference machine (bench/budget.py); None: timed at the
    # start. Set it to plan for another machine, or to size the run without the timing
    budget_speed: float | None = None
    distill: dict[str, Any] = field(default_factory=dict)  # distill config keys for every student
    # export variants; empty: the CPU candidates (fp32, fused, int8-dynamic and, where OpenVINO is installed,
    # openvino-int8 and openvino, which on BF16 CPUs is openvino-bf16), fp32 + fp16 on cuda
    variants: tuple[str, ...] = ()
    # which accepted variants to serve: "fastest" (per model, the one fastest on one text at a time in the
    # export's speed trial, whatever its precision or runtime) or "all"
    serve_variants: str = "fastest"
    export_teacher: bool = True  # export and serve the teacher's variants too (what export alone buys)
    serve_student_torch: bool = False  # also serve each student's PyTorch directory
    # with >= 4 usable CPUs, pin the load generator to one and the server to the rest (no competition)
    pin_cpus: bool = True
    serve: ServeSettings = field(default_factory=ServeSettings)
    loadtest: LoadSettings = field(default_factory=LoadSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"device {self.device!r}: use cpu, cuda or cuda:N")
        if not self.students:
            raise UserError("the pipeline needs at least one student")
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise UserError(f"student names repeat: {', '.join(names)}")
        if self.steps is not None and self.steps < 1:
            raise UserError("steps must be at least 1")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise UserError("budget_minutes must be positive (or null: no budget)")
        if self.budget_speed is not None and self.budget_speed <= 0:
            raise UserError("budget_speed must be positive (or null: time this machine)")
        if self.serve_variants not in ("fastest", "all"):
            raise UserError(f"serve_variants {self.serve_variants!r}: fastest or all")
        for reserved in ("out", "resume", "overwrite", "method", "teacher", "corpus", "device"):
            if reserved in self.distill or any(reserved in s.settings for s in self.students):
                raise UserError(f"distill setting {reserved!r} is set by the pipeline itself; use its own key")

    @property
    def export_variants(self) -> tuple[str, ...]:
        if self.variants:
            return self.variants
        if self.device.startswith("cuda"):
            return ("fp32", "fp16")
        from studentpack.export.presets import openvino_installed
        from studentpack.ground.isa import BF16_FLAGS
        from studentpack.ground.provenance import cpu_flags

        if not openvino_installed():
            return ("fp32", "fused", "int8-dynamic")
        # OpenVINO computes in bf16 where the CPU has it (faster than its fp32 there), else in fp32
        openvino = "openvino-bf16" if any(f in cpu_flags() for f in BF16_FLAGS) else "openvino"
        return ("fp32", "fused", "int8-dynamic", openvino, "openvino-int8")

    def distill_mapping(self, student: StudentPlan) -> dict[str, Any]:
        """The `studentpack distill` config of one student (validated by DistillConfig before any run)."""
        if student.static:
            return self._static_mapping(student)
        steps = student.steps or self.steps
        mapping: dict[str, Any] = {**({"steps": steps} if steps else {}), **self.distill, **student.settings}
        mapping["method"] = student.method
        mapping["student"] = {**mapping.get("student", {}), "layers": student.layers}
        if student.hidden is not None:
            mapping["student"]["hidden"] = student.hidden
        return self._with_inputs(mapping)

    def _static_mapping(self, student: StudentPlan) -> dict[str, Any]:
        """A static student's config: of the settings for every student, those a static run reads (the
        transformer ones, like lr or steps, mean nothing to a table); its own settings go as given."""
        shared = {key: value for key, value in self.distill.items() if key in STATIC_SHARED_KEYS}
        return self._with_inputs({**shared, **student.settings, "method": STATIC})

    def _with_inputs(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """What the pipeline sets for every student: its teacher, corpus and device."""
        if self.teacher is not None:
            mapping["teacher"] = self.teacher
        if self.corpus:
            mapping["corpus"] = list(self.corpus)
        mapping["device"] = "cuda" if self.device.startswith("cuda") else "cpu"
        return mapping


# of the `distill` settings for every student, those a static student reads too
STATIC_SHARED_KEYS = frozenset({"max_length", "split_sentences", "seed", "threads"})
