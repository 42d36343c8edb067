"""The distillation unit of each student: `studentpack distill` as a child process, resumed from its
checkpoints when the previous run of the same inputs stopped part way."""

from __future__ import annotations

import sys

from studentpack.bench.input_digests import corpus_digest, dir_digest
from studentpack.bench.pipeline_config import PipelineConfig, StudentPlan
from studentpack.bench.pipeline_inputs import PipelineInputs
from studentpack.bench.stages import fingerprint, run_cli
from studentpack.bench.units import Units
from studentpack.ground import atomic


def distill(cfg: PipelineConfig, inputs: PipelineInputs, units: Units, student: StudentPlan) -> bool:
    """Distil `student` under <out>/<student>; True when its student is there."""
    run_dir = units.out / student.name
    mapping = dict(inputs.distill_configs[student.name])
    if not student.static:
        mapping["steps"] = student.steps  # the budget's
    unit_inputs = {"config": mapping, "teacher": dir_digest(inputs.teacher_dir), "corpus": corpus_digest(cfg)}
    unit = f"distill:{student.name}"
    ledger = units.ledger

    def work() -> None:
        config_file = units.out / "logs" / f"{student.name}.distill.json"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(config_file, mapping)
        resumable = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
        if resumable and ledger.started_with(unit, fingerprint(unit_inputs)):
            args = ["distill", "--resume", str(run_dir)]
        else:
            args = ["distill", "--config", str(config_file), "--out", str(run_dir), "--overwrite"]
        if not sys.stderr.isatty():
            args.append("--quiet")  # no progress bar redrawn into a log file
        ledger.mark(unit, fingerprint(unit_inputs), "started")
        run_cli(args, units.log(f"distill-{student.name}"))

    what = "a table of token vectors" if student.static else f"{student.method}, {mapping['steps']} steps"
    label = f"distill {student.name} ({what})"
    from studentpack.distill.rundir import RunDir

    manifest = run_dir / "student" / "studentpack.json"
    # finished(), not the manifest alone: an --overwrite run keeps the previous student until it replaces it
    if RunDir(run_dir).finished() and ledger.started_with(unit, fingerprint(unit_inputs)):
        ledger.mark(unit, fingerprint(unit_inputs), "done")  # it finished; the pipeline stopped before noting it
    return units.run(unit, label, unit_inputs, manifest, work)
