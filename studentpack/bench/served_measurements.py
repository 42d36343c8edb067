"""The served measurements: one server carries every model, and each gets a load test and a served
evaluation on every task (against the teacher served beside it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studentpack.bench.evaluations import Evaluations
from studentpack.bench.input_digests import content_digest
from studentpack.bench.pipeline_config import PipelineConfig
from studentpack.bench.pipeline_inputs import PipelineInputs
from studentpack.bench.pipeline_plan import TEACHER
from studentpack.bench.stages import fingerprint
from studentpack.bench.units import Units
from studentpack.config import to_dict
from studentpack.ground.errors import UserError


@dataclass
class ServedModel:
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
    model: ServedModel
    task: str | None

    @property
    def label(self) -> str:
        return f"load-test {self.model.name}" if self.task is None else f"eval {self.model.name} {self.task} (served)"


class ServedMeasurements:
    def __init__(self, cfg: PipelineConfig, inputs: PipelineInputs, units: Units, evaluations: Evaluations) -> None:
        self.cfg, self.inputs, self.units, self.evaluations = cfg, inputs, units, evaluations

    def measure(self, served: list[ServedModel]) -> None:
        """One server for every model (the teacher first); a load test and a served evaluation of each."""
        from studentpack.ground.provenance import hash_directory

        units, cfg = self.units, self.cfg
        digests = {m.name: hash_directory(m.path) for m in served}
        teacher = served[0]
        plans: list[_Measurement] = []
        for model in served:
            load_inputs = {"model": digests[model.name], "load": to_dict(cfg.loadtest), "texts": self._texts_digest(),
                           "serve": to_dict(cfg.serve), "device": cfg.device}  # fmt: skip
            plans.append(_Measurement(f"loadtest:{model.name}", self._bench_dir(model) / "loadtest.json",
                                      load_inputs, model, None))  # fmt: skip
            for task, _ in self.inputs.tasks:
                eval_inputs = {"model": digests[model.name], "task": task, "eval": to_dict(cfg.eval),
                               "data": self.inputs.data_digest, "teacher": digests[teacher.name]}  # fmt: skip
                plans.append(_Measurement(f"served-eval:{model.name}:{task}", units.out / model.run / "eval.json",
                                          eval_inputs, model, task))  # fmt: skip
        if not units.force and all(units.ledger.fresh(p.unit, fingerprint(p.inputs), p.artifact) for p in plans):
            for plan in plans:
                units.clock.skip(plan.unit, plan.unit.replace(":", " "))
            return
        from studentpack.bench.server_proc import running_server

        units.clock.begin("serve", f"serve {len(served)} models on a free loopback port")
        try:
            with running_server({m.name: m.path for m in served}, self._serve_options(), units.log("serve")) as server:
                units.clock.end("serve")
                units.say(f"  serving at {server.url}: {', '.join(m.name for m in served)}")
                for plan in plans:
                    units.run(plan.unit, plan.label, plan.inputs, plan.artifact, self._measurer(server.url, plan))
        except UserError as exc:
            units.outcome.failures["serve"] = str(exc)
            units.say(f"FAILED serve: {exc}")

    def _measurer(self, url: str, plan: _Measurement) -> Callable[[], None]:
        teacher = f"{url}/v2/models/{TEACHER}-torch"
        if plan.task is None:
            return lambda: self._loadtest(url, plan.model)
        task = plan.task
        return lambda: self.evaluations.run(f"{url}/v2/models/{plan.model.name}", task, teacher, plan.artifact)

    def _bench_dir(self, model: ServedModel) -> Path:
        return self.units.out / model.run / "bench" / model.variant

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
        return str(Path(self.cfg.data) / "sst2") if self.cfg.data and ("sst2", "probe") in self.inputs.tasks else None

    def _texts_digest(self) -> str | None:
        texts = self._texts()
        return content_digest(Path(texts)) if texts else None

    def _loadtest(self, url: str, model: ServedModel) -> None:
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
        result = run_loadtest(options, log=lambda line: self.units.say(f"  {line}"))
        if result["failures"]:
            raise UserError(f"{result['failures']} request(s) to {model.name} failed (see {result['saved_to']})")
