"""PipelineConfig: the whole chain's settings as one frozen dataclass, with the quick preset as defaults.

The defaults are the "quick" preset: three 3-layer students (MHA, HS, OD) distilled briefly on the
embedded corpus, exported to fp32 and INT8, served beside the teacher, load-tested at two
concurrency levels and scored by agreement with the teacher, in about 10 minutes on a
2-core CPU. `examples/full.yaml` is the long version on labelled data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from studentpack.errors import UserError

INT8_CANDIDATES = ("int8-dynamic", "int8-static", "openvino-int8")  # one of them is served when the pipeline chooses

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$")


@dataclass(frozen=True)
class StudentPlan:
    name: str  # the run directory under `out`, and the served model's name prefix
    method: str = "mha"
    layers: int = 3
    hidden: int | None = None  # None: the teacher's width
    settings: dict[str, Any] = field(default_factory=dict)  # any other `studentpack distill` config keys

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in ("teacher", "report", "logs"):
            raise UserError(f"student name {self.name!r}: letters, digits, '.', '_', '-'; not teacher/report/logs")


def _default_students() -> tuple[StudentPlan, ...]:
    # the OD teacher head (all-MiniLM-L6-v2 has none) is fitted briefly in the quick preset
    return (
        StudentPlan("mha-l3", "mha"),
        StudentPlan("hs-l3", "hs"),
        StudentPlan("od-l3", "od", settings={"fit_head_steps": 100}),
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
    duration_s: float = 8.0
    warmup_s: float = 2.0
    texts_per_request: int = 1
    pool: int = 1000


@dataclass(frozen=True)
class EvalSettings:
    agreement_texts: int = 300  # held-out texts for teacher agreement (no labelled data)
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
    steps: int = 100  # distillation steps of every student (a student's settings may override)
    distill: dict[str, Any] = field(default_factory=dict)  # distill config keys for every student
    # export variants; empty: on cpu fp32 + the INT8 candidates (int8-dynamic, and openvino-int8 where
    # OpenVINO is installed: the faster of them in the export's speed trial is served), fp32 + fp16 on cuda
    variants: tuple[str, ...] = ()
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
        if self.steps < 1:
            raise UserError("steps must be at least 1")
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

        return ("fp32", "int8-dynamic") + (("openvino-int8",) if openvino_installed() else ())

    @property
    def choose_int8(self) -> bool:
        """The default variant set serves only the fastest INT8 candidate; a variant list named by the user
        is served whole."""
        return not self.variants and len(self.int8_candidates) > 1

    @property
    def int8_candidates(self) -> tuple[str, ...]:
        return tuple(v for v in self.export_variants if v in INT8_CANDIDATES)

    @property
    def planned_served_variants(self) -> tuple[str, ...]:
        """The variants the plan expects to serve per run (the INT8 one not yet known)."""
        if not self.choose_int8:
            return self.export_variants
        return tuple(v for v in self.export_variants if v not in INT8_CANDIDATES) + self.int8_candidates[:1]

    def distill_mapping(self, student: StudentPlan) -> dict[str, Any]:
        """The `studentpack distill` config of one student (validated by DistillConfig before any run)."""
        mapping: dict[str, Any] = {"steps": self.steps, **self.distill, **student.settings}
        mapping["method"] = student.method
        mapping["student"] = {**mapping.get("student", {}), "layers": student.layers}
        if student.hidden is not None:
            mapping["student"]["hidden"] = student.hidden
        if self.teacher is not None:
            mapping["teacher"] = self.teacher
        if self.corpus:
            mapping["corpus"] = list(self.corpus)
        mapping["device"] = "cuda" if self.device.startswith("cuda") else "cpu"
        return mapping
