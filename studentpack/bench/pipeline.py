"""`run_pipeline(config)`: distill -> eval -> export -> serve -> load-test -> served eval -> report.

Layout under `config.out` (every stage's artifacts stay there):

    <student>/                  a distillation run (student/, log.jsonl) as `studentpack distill` writes it
    <student>/eval.json         local and served evaluations of the student and its variants
    <student>/onnx/<variant>/   exported variants (`studentpack export`)
    <student>/bench/<variant>/loadtest.json
    teacher/onnx/..., teacher/bench/torch/loadtest.json, teacher/eval.json
    report/                     report.md, report.json, pareto.png
    logs/                       each child command's output; the server's log
    pipeline.json               per unit: inputs fingerprint, status, seconds (what a re-run skips); the budget
                                plan (calibration, steps per student and why), which a re-run reuses

Before any work, the budget (bench/budget.py) times the teacher here and sizes the budgeted students'
distillation to `budget_minutes`. After export, each model is served in the variant that ran fastest on
one text at a time in the export's speed trial, among those that passed their gate (bench/served_choice.py).

A unit that fails (a student that does not train, a variant that does not export) is reported and
its dependants are skipped; the other students go on, and the report covers what finished.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studentpack.bench.budget import REFERENCE_PROBE_MS, Calibration, calibrate
from studentpack.bench.budget_keeper import BudgetKeeper
from studentpack.bench.pipeline_config import PipelineConfig, StudentPlan
from studentpack.bench.pipeline_plan import SERVED, TEACHER
from studentpack.bench.stages import ChildFailed, Clock, Ledger, fingerprint, run_cli
from studentpack.config import to_dict
from studentpack.ground import atomic
from studentpack.ground.errors import UserError


@dataclass
class Served:
    """One model the server will carry."""

    name: str  # served name
    run: str  # student name or "teacher"
    variant: str  # torch | fp32 | int8-dynamic | ...
    path: Path


@dataclass
class _Measurement:
    """A load test (task None) or a served evaluation of one model, as a unit of the pipeline."""

    unit: str
    artifact: Path
    inputs: dict[str, Any]
    model: Served
    task: str | None

    @property
    def label(self) -> str:
        return f"load-test {self.model.name}" if self.task is None else f"eval {self.model.name} {self.task} (served)"


@dataclass
class Outcome:
    failures: dict[str, str] = field(default_factory=dict)  # unit -> reason
    notes: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    seconds: float = 0.0


class Pipeline:
    def __init__(self, cfg: PipelineConfig, force: bool, say: Callable[[str], None]) -> None:
        self.cfg, self.force, self.say = cfg, force, say
        self.started = time.monotonic()
        self.out = Path(cfg.out).expanduser()
        self.outcome = Outcome()
        self.tasks = _tasks(cfg.data)
        # by content, not path: data edited in place must not leave its evaluations and load tests "unchanged"
        self.data_digest = [_content_digest(Path(cfg.data).expanduser() / task) for task, _ in self.tasks] if cfg.data \
            else None  # fmt: skip
        self.distill_configs = {s.name: _checked_distill_config(cfg, s) for s in cfg.students}
        self.ledger: Ledger
        self.clock: Clock
        self.budget: BudgetKeeper
        self.shape_choice: dict[str, tuple[str, str]] = {}  # model shape -> (served variant, the model it was timed on)

    # ---------------------------------------------------------------------------------- plumbing

    def unit(self, unit: str, label: str, inputs: Any, artifact: Path | None, work: Callable[[], None]) -> bool:
        """Run `work` unless fresh; a failure is recorded and reported, never raised. True when done."""
        fp = fingerprint(inputs)
        if not self.force and self.ledger.fresh(unit, fp, artifact):
            self.clock.skip(unit, label)
            return True
        self.clock.begin(unit, label)
        try:
            work()
        except (UserError, ChildFailed) as exc:
            return self._failed(unit, fp, label, str(exc))
        except Exception as exc:  # a bug in one unit must not lose the others' results
            trace = traceback.format_exc(limit=4)
            return self._failed(unit, fp, label, f"{type(exc).__name__}: {exc}\n{trace}")
        self.ledger.mark(unit, fp, "done", self.clock.end(unit))
        return True

    def _failed(self, unit: str, fp: str, label: str, reason: str) -> bool:
        seconds = self.clock.end(unit)
        self.ledger.mark(unit, fp, "failed", seconds, reason.splitlines()[0])
        self.outcome.failures[unit] = reason.splitlines()[0]
        self.say(f"FAILED {label}: {reason.strip()}")
        return False

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    # ---------------------------------------------------------------------------------- stages

    def run(self) -> Outcome:
        cfg = self.cfg
        atomic.check_writable_dir(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.out / "pipeline.json")
        tasks = [t for t, _ in self.tasks]
        self.budget = BudgetKeeper(cfg, self.ledger, self.distill_configs, tasks, _corpus_chars(cfg),
                                   str(self.teacher_dir))  # fmt: skip
        plan = self.budget.start(self.force, self._calibrate)
        # the clock counts from the start, the timing of the teacher included: the budget is the whole run's
        self.clock = Clock(self.budget.estimates(self.budget.students()), self.say, started=self.started)
        for reason in plan.reasons:
            self.say(f"budget: {reason}")
        trained: list[StudentPlan] = []
        for planned in cfg.students:  # those the plan left out too: each is weighed again when its turn comes
            student = self.budget.revise(planned, trained, self.clock)
            past = {s.name for s in trained} | {planned.name}
            coming = [s for s in self.budget.students() if s.name not in past]
            self.clock.estimates = self.budget.estimates([*trained, *([student] if student else []), *coming])
            if student is not None and self.distill(student):
                trained.append(student)
        for name in plan.dropped:
            self.outcome.notes.append(f"{name}: not distilled, the time budget left no room for it")
        for student in trained if cfg.eval.local else []:
            self.evaluate_local(student)
        served: list[Served] = [Served(f"{TEACHER}-torch", TEACHER, "torch", self.teacher_dir)]
        sources = [(s.name, self.out / s.name / "student") for s in trained]
        if cfg.export_teacher:
            sources.insert(0, (TEACHER, self.teacher_dir))
        for run, source in sources:
            served += self.export(run, source)
        if cfg.serve_student_torch:
            served += [Served(f"{s.name}-torch", s.name, "torch", self.out / s.name / "student") for s in trained]
        self.measure(served)
        self.report()
        self.outcome.seconds = self.clock.elapsed()
        return self.outcome

    def _calibrate(self) -> Calibration | None:
        if self.cfg.budget_speed is not None:
            return Calibration(round(self.cfg.budget_speed * REFERENCE_PROBE_MS, 1), "given (budget_speed)", 0)
        if self.cfg.budget_minutes is None or self.cfg.device.startswith("cuda"):
            return None
        self.say("timing the teacher on this machine to size the distillation (a few seconds)")
        return calibrate(self.teacher_dir)

    @property
    def teacher_dir(self) -> Path:
        from studentpack.text.sources import resolve_model

        return resolve_model(self.cfg.teacher).path

    def distill(self, student: StudentPlan) -> bool:
        run_dir = self.out / student.name
        mapping = {**self.distill_configs[student.name], "steps": student.steps}
        inputs = {"config": mapping, "teacher": _dir_digest(self.teacher_dir), "corpus": _corpus_digest(self.cfg)}
        unit = f"distill:{student.name}"

        def work() -> None:
            config_file = self.out / "logs" / f"{student.name}.distill.json"
            config_file.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_json(config_file, mapping)
            resumable = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
            if resumable and self.ledger.started_with(unit, fingerprint(inputs)):
                args = ["distill", "--resume", str(run_dir)]
            else:
                args = ["distill", "--config", str(config_file), "--out", str(run_dir), "--overwrite"]
            if not sys.stderr.isatty():
                args.append("--quiet")  # no progress bar redrawn into a log file
            self.ledger.mark(unit, fingerprint(inputs), "started")
            run_cli(args, self.log(f"distill-{student.name}"))

        label = f"distill {student.name} ({student.method}, {mapping['steps']} steps)"
        from studentpack.distill.rundir import RunDir

        manifest = run_dir / "student" / "studentpack.json"
        # finished(), not the manifest alone: an --overwrite run keeps the previous student until it replaces it
        if RunDir(run_dir).finished() and self.ledger.started_with(unit, fingerprint(inputs)):
            self.ledger.mark(unit, fingerprint(inputs), "done")  # it finished; the pipeline stopped before noting it
        return self.unit(unit, label, inputs, manifest, work)

    def evaluate_local(self, student: StudentPlan) -> None:
        model = self.out / student.name / "student"
        for task, _ in self.tasks:
            inputs = {"model": _dir_digest(model), "task": task, "eval": to_dict(self.cfg.eval),
                      "data": self.data_digest}  # fmt: skip
            label = f"eval {student.name} {task} (local)"
            work = functools.partial(self._evaluate, str(model), task, None, None)
            self.unit(f"eval:{student.name}:{task}", label, inputs, self.out / student.name / "eval.json", work)

    def _evaluate(self, model: str, task: str, teacher: str | None, out: Path | None) -> None:
        from studentpack.tasks import EvalConfig, evaluate

        settings = self.cfg.eval
        options: dict[str, Any] = {"model": model, "task": task, "batch_size": settings.batch_size}
        if task == "agreement":
            options["limit"] = settings.agreement_texts
            options["teacher"] = teacher or str(self.teacher_dir)
        else:
            options["data"] = str(Path(self.cfg.data or "") / task)
            options["limit"] = settings.limit
            if task == "sst2":
                options["train_limit"] = settings.probe_train
        if out is not None:
            options["out"] = str(out)
        evaluation = evaluate(EvalConfig(**options))
        value = evaluation.result.value
        self.say(f"  {task} {evaluation.result.metric}: {'n/a' if value is None else f'{value:.2f}'}")

    def export(self, run: str, source: Path) -> list[Served]:
        onnx_dir = self.out / run / "onnx"
        shape = _shape_key(source)
        shared = self.shape_choice.get(shape) if self.cfg.serve_variants == "fastest" else None
        # a model of a shape already timed takes its choice: a variant's speed depends on the graph, not the weights
        variants = tuple(dict.fromkeys(("fp32", shared[0]))) if shared else self.cfg.export_variants
        inputs = {"source": _dir_digest(source), "variants": variants, "device": self.cfg.device}

        def work() -> None:
            args = ["export", str(source), "--onnx", "--out", str(onnx_dir), "--overwrite"]
            args += ["--variants", ",".join(variants), "--device", self.cfg.device]
            args += ["--no-speed-trial"] if shared else ["--speed-shapes", "text"]  # what the choice reads
            if run_cli(args, self.log(f"export-{run}")) == 1:
                rejected = sorted(p.name for p in (onnx_dir / "rejected").glob("*"))
                self.outcome.notes.append(f"{run}: variant(s) rejected by their gate: {', '.join(rejected)}")

        if not self.unit(f"export:{run}", f"export {run} ({', '.join(variants)})", inputs, onnx_dir, work):
            # what lies in onnx_dir is an earlier export's, of other inputs: serving it would report a stale model
            self.outcome.notes.append(f"{run}: its export failed; none of its variants is served")
            return []
        exported = [v for v in variants if (onnx_dir / v / "export.json").is_file()]
        if self.cfg.serve_variants == "fastest":
            exported = self._fastest(run, onnx_dir, exported, shared)
            if exported and not shared:
                self.shape_choice.setdefault(shape, (exported[0], run))
        return [Served(f"{run}-{v}", run, v, onnx_dir / v) for v in exported]

    def _fastest(self, run: str, onnx_dir: Path, exported: list[str], shared: tuple[str, str] | None) -> list[str]:
        """The one variant to serve: the fastest accepted one on one text at a time (or, for a shape already
        timed, that model's choice when it passed its gate here); the choice goes to the notes."""
        from studentpack.bench.served_choice import Choice, fastest_accepted

        records = {v: json.loads((onnx_dir / v / "export.json").read_text(encoding="utf-8")) for v in exported}
        if shared and shared[0] in records:
            choice = Choice(shared[0], {}, f"the choice for {shared[1]}, the same shape (no trial of its own)")
        else:
            choice = fastest_accepted(records)
        if choice.variant is None:
            self.outcome.notes.append(f"{run}: {choice.why}; nothing served")
            return []
        self.outcome.notes.append(f"{run}: serving {choice.variant}, {choice.why}")
        for unit in [f"loadtest:{run}-{SERVED}", *(f"served-eval:{run}-{SERVED}:{t}" for t, _ in self.tasks)]:
            self.clock.rename(unit, unit.replace(f"{run}-{SERVED}", f"{run}-{choice.variant}", 1))
        return [choice.variant]

    def measure(self, served: list[Served]) -> None:
        """One server for every model; a load test and a served evaluation of each."""
        from studentpack.ground.provenance import hash_directory

        digests = {m.name: hash_directory(m.path) for m in served}
        teacher = served[0]
        plans: list[_Measurement] = []
        for model in served:
            load_inputs = {"model": digests[model.name], "load": to_dict(self.cfg.loadtest),
                           "texts": self._texts_digest(), "serve": to_dict(self.cfg.serve),
                           "device": self.cfg.device}  # fmt: skip
            plans.append(_Measurement(f"loadtest:{model.name}", self._bench_dir(model) / "loadtest.json",
                                      load_inputs, model, None))  # fmt: skip
            for task, _ in self.tasks:
                eval_inputs = {"model": digests[model.name], "task": task, "eval": to_dict(self.cfg.eval),
                               "data": self.data_digest, "teacher": digests[teacher.name]}  # fmt: skip
                plans.append(_Measurement(f"served-eval:{model.name}:{task}", self.out / model.run / "eval.json",
                                          eval_inputs, model, task))  # fmt: skip
        if not self.force and all(self.ledger.fresh(p.unit, fingerprint(p.inputs), p.artifact) for p in plans):
            for plan in plans:
                self.clock.skip(plan.unit, plan.unit.replace(":", " "))
            return
        from studentpack.bench.server_proc import running_server

        self.clock.begin("serve", f"serve {len(served)} models on a free loopback port")
        try:
            with running_server({m.name: m.path for m in served}, self._serve_options(), self.log("serve")) as server:
                self.clock.end("serve")
                self.say(f"  serving at {server.url}: {', '.join(m.name for m in served)}")
                for plan in plans:
                    self.unit(plan.unit, plan.label, plan.inputs, plan.artifact, self._measurer(server.url, plan))
        except UserError as exc:
            self.outcome.failures["serve"] = str(exc)
            self.say(f"FAILED serve: {exc}")

    def _measurer(self, url: str, plan: _Measurement) -> Callable[[], None]:
        teacher = f"{url}/v2/models/{TEACHER}-torch"
        if plan.task is None:
            return lambda: self._loadtest(url, plan.model)
        task = plan.task
        return lambda: self._evaluate(f"{url}/v2/models/{plan.model.name}", task, teacher, plan.artifact)

    def _bench_dir(self, model: Served) -> Path:
        return self.out / model.run / "bench" / model.variant

    def _pinning(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        from studentpack.ground.cpus import split_for_load_test

        return split_for_load_test() if self.cfg.pin_cpus else None

    def _serve_options(self) -> list[str]:
        s = self.cfg.serve
        options = ["--device", self.cfg.device, "--max-batch", str(s.max_batch), "--max-wait-ms", str(s.max_wait_ms)]
        options += ["--max-length", str(s.max_length), "--log-level", "warning"]
        pinning = self._pinning()
        if pinning:
            options += ["--cpus", ",".join(map(str, pinning[0]))]
        if s.threads:
            options += ["--threads", str(s.threads)]
        return options

    def _texts(self) -> str | None:
        """Load-test texts: SST-2 dev sentences with labelled data (a real length mix), else held-out prose."""
        return str(Path(self.cfg.data) / "sst2") if self.cfg.data and ("sst2", "probe") in self.tasks else None

    def _texts_digest(self) -> str | None:
        texts = self._texts()
        return _content_digest(Path(texts)) if texts else None

    def _loadtest(self, url: str, model: Served) -> None:
        from studentpack.bench.loadtest import LoadtestOptions, run_loadtest

        settings = self.cfg.loadtest
        options = LoadtestOptions(
            url=f"{url}/v2/models/{model.name}",
            users=settings.users,
            duration_s=settings.duration_s,
            warmup_s=settings.warmup_s,
            texts=self._texts(),
            pool=settings.pool,
            texts_per_request=settings.texts_per_request,
            model_dir=str(model.path),
            client_cpus=pinning[1] if (pinning := self._pinning()) else (),
            out=str(self._bench_dir(model)),
            label=f"{model.run} {model.variant}",
        )
        result = run_loadtest(options, log=lambda line: self.say(f"  {line}"))
        if result["failures"]:
            raise UserError(f"{result['failures']} request(s) to {model.name} failed (see {result['saved_to']})")

    def report(self) -> None:
        from studentpack.bench.report import write_report

        unit = "report"
        self.clock.begin(unit, "report")
        try:
            self.outcome.report = write_report([self.out], self.out / "report")
        except UserError as exc:
            self.outcome.failures[unit] = str(exc)
            self.say(f"FAILED report: {exc}")
        self.clock.end(unit)


# ------------------------------------------------------------------------------------------- helpers


def _tasks(data: str | None) -> list[tuple[str, str]]:
    """Agreement without labelled data; STS-B zero-shot and the SST-2 probe with a data directory."""
    if data is None:
        return [("agreement", "zeroshot")]
    root = Path(data).expanduser()
    if not root.is_dir():
        raise UserError(f"data {data} is not a directory (expected one holding stsb/ and sst2/, like ../shared/data)")
    tasks = []
    from studentpack.tasks import data as D

    if (root / "stsb").is_dir():
        D.locate(str(root / "stsb"), "eval")
        tasks.append(("stsb", "zeroshot"))
    if (root / "sst2").is_dir():
        D.locate(str(root / "sst2"), "eval")
        D.locate(str(root / "sst2"), "train")
        tasks.append(("sst2", "probe"))
    if not tasks:
        raise UserError(f"data {data} holds neither stsb/ nor sst2/ (each with dev.* and train.* files)")
    return tasks


def _checked_distill_config(cfg: PipelineConfig, student: StudentPlan) -> dict[str, Any]:
    """The student's distill settings, validated now (a typo fails before any work), as plain data."""
    from studentpack.config import build
    from studentpack.distill.config import DistillConfig

    mapping = cfg.distill_mapping(student)
    try:
        resolved = build(DistillConfig, mapping)
    except UserError as exc:
        raise UserError(f"student {student.name}: {exc}") from exc
    return {**mapping, "steps": resolved.steps}  # distill's default steps, when the plan names none


def _shape_key(model_dir: Path) -> str:
    """The architecture of a model directory: what its variants' speed depends on (its weights do not)."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"unreadable:{model_dir}"  # never shared
    keys = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "vocab_size")  # fmt: skip
    return json.dumps([config.get(k) for k in keys] + [(model_dir / "2_Dense").is_dir()])


def _corpus_chars(cfg: PipelineConfig) -> int:
    """Characters of the distillation corpus (the cost model sizes the teacher cache's fill by it)."""
    from studentpack.text.corpus import load_corpus

    try:
        return sum(len(t) for t in load_corpus(list(cfg.corpus) or None).texts)
    except UserError:
        return 500_000  # a corpus that cannot be read here fails in distill, with its own message


def _dir_digest(path: Path) -> str:
    from studentpack.ground.provenance import hash_directory

    return hash_directory(path) if path.is_dir() else "missing"


def _corpus_digest(cfg: PipelineConfig) -> list[str]:
    """Files by content, embedded corpora by their text; hub datasets by name."""
    from studentpack.text.corpus import EMBEDDED, load_corpus
    from studentpack.text.sources import EMBEDDED_CORPUS

    out = []
    for spec in cfg.corpus or (EMBEDDED_CORPUS,):
        path = Path(spec).expanduser()
        if spec in EMBEDDED:
            out.append(load_corpus([spec]).sha256)
        elif path.exists():
            out.append(_content_digest(path))
        else:
            out.append(spec)
    return out


def _content_digest(path: Path) -> str:
    """sha256 over a file's bytes, or over a directory's files (relative names and bytes), in name order."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" if path.is_dir() else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def check_device(device: str) -> None:
    """A GPU asked for and missing is an error before any work, never a quiet CPU run."""
    if not device.startswith("cuda"):
        return
    import onnxruntime
    import torch

    from studentpack.ground.errors import GpuUnavailableError

    if not torch.cuda.is_available():
        raise GpuUnavailableError(f"--device {device}: torch sees no CUDA device")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise GpuUnavailableError(
            f"--device {device}: onnxruntime has no CUDAExecutionProvider; install studentpack[gpu]"
        )


def run_pipeline(cfg: PipelineConfig, force: bool = False, say: Callable[[str], None] | None = None) -> Outcome:
    say = say or (lambda line: print(f"studentpack pipeline: {line}", file=sys.stderr, flush=True))
    check_device(cfg.device)
    pipeline = Pipeline(cfg, force, say)
    _ = pipeline.teacher_dir  # resolves the teacher now: a bad --teacher fails before any work
    outcome = pipeline.run()
    atomic.write_json(
        pipeline.out / "pipeline-summary.json",
        {
            "config": to_dict(cfg),
            "seconds": round(outcome.seconds, 1),
            "failures": outcome.failures,
            "notes": outcome.notes,
            "cpu_count": os.cpu_count(),
        },
    )
    return outcome


def check_config(cfg: PipelineConfig) -> None:
    """Every check that needs no work: data layout, each student's distill settings, the teacher."""
    _ = Pipeline(cfg, force=False, say=lambda line: None).teacher_dir


def config_json(cfg: PipelineConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2)
