"""`studentpack pipeline` end to end on a tiny teacher: every stage, the report, a re-run that skips all,
and a broken student that does not take the others down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studentpack.bench.pipeline import run_pipeline
from studentpack.bench.pipeline_config import PipelineConfig
from studentpack.cli import main
from studentpack.config import build

FAST_DISTILL = {"batch_size": 4, "max_length": 32, "log_every": 1, "checkpoint_every": 2, "threads": 1}


def _config(teacher: Path, corpus: Path, out: Path, **extra: Any) -> PipelineConfig:
    data: dict[str, Any] = {
        "out": str(out),
        "teacher": str(teacher),
        "corpus": [str(corpus)],
        "students": [{"name": "mha-l2", "method": "mha", "layers": 2}, {"name": "hs-l2", "method": "hs", "layers": 2}],
        "steps": 3,
        "distill": FAST_DISTILL,
        "serve": {"threads": 1},
        "loadtest": {"users": [1, 2], "duration_s": 0.8, "warmup_s": 0.3, "pool": 30},
        "eval": {"agreement_texts": 24},
        **extra,
    }
    return build(PipelineConfig, data)


@pytest.fixture(scope="module")
def finished(tiny_bert_dir: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    outcome = run_pipeline(_config(tiny_bert_dir, corpus, out), say=lambda line: None)
    return out, outcome


def test_every_stage_leaves_its_artifact_and_the_report_covers_them(finished: tuple[Path, Any]) -> None:
    out, outcome = finished
    assert outcome.failures == {}
    for run in ("mha-l2", "hs-l2"):
        assert (out / run / "student" / "studentpack.json").is_file()
        assert not (out / run / "checkpoints").exists()  # a finished run keeps no optimizer state
        assert (out / run / "onnx" / "fp32" / "export.json").is_file()
        assert json.loads((out / run / "bench" / "fp32" / "loadtest.json").read_text())["failures"] == 0
        results = json.loads((out / run / "eval.json").read_text())["results"]
        assert "student" in results and f"served/{run}-fp32" in results  # local, then through the endpoint
    assert (out / "teacher" / "bench" / "torch" / "loadtest.json").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    served = {r["name"] for r in report["rows"] if r["device"] == "cpu"}
    assert {"teacher torch", "teacher fp32", "mha-l2 fp32", "hs-l2 fp32"} <= served
    baseline = [r for r in report["rows"] if r["baseline"]]
    assert [r["name"] for r in baseline] == ["teacher torch"]
    assert all(r["metrics"]["agreement/zeroshot"]["served"] for r in report["rows"] if r["device"] == "cpu")
    assert report["headline"]["cpu"]["row"] in served
    assert (out / "report" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    ledger = json.loads((out / "pipeline.json").read_text())["units"]
    assert all(unit["status"] == "done" for unit in ledger.values())


def test_one_int8_variant_served_the_fastest_in_the_export_trial(finished: tuple[Path, Any]) -> None:
    pytest.importorskip("openvino")
    out, outcome = finished
    for run in ("teacher", "mha-l2", "hs-l2"):
        records = {
            v: json.loads((out / run / "onnx" / v / "export.json").read_text())
            for v in ("int8-dynamic", "openvino-int8")
        }
        times = {v: r["speed"]["median_ms"]["text"] for v, r in records.items()}
        fastest = min(times, key=lambda v: times[v])
        served = sorted(p.name for p in (out / run / "bench").iterdir() if (p / "loadtest.json").is_file())
        assert fastest in served and ({"int8-dynamic", "openvino-int8"} - {fastest}).isdisjoint(served), (run, served)
        assert any(note.startswith(f"{run}: serving {fastest} ") for note in outcome.notes), outcome.notes


def test_a_rerun_skips_every_finished_unit(
    finished: tuple[Path, Any], tiny_bert_dir: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = finished
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if "report" not in p.parts}
    lines: list[str] = []
    outcome = run_pipeline(_config(tiny_bert_dir, corpus, out), say=lines.append)
    assert outcome.failures == {}
    assert not any(line.startswith("[") and "report" not in line for line in lines)  # nothing ran but the report
    assert sum(line.startswith("skip ") for line in lines) >= 12
    rewritten = [p.name for p, t in before.items() if p.stat().st_mtime_ns != t]
    assert rewritten == ["pipeline-summary.json"]  # no artifact of any stage was touched


def test_a_changed_input_reruns_only_what_depends_on_it(finished: tuple[Path, Any], tiny_bert_dir: Path,
                                                        corpus: Path) -> None:  # fmt: skip
    out, _ = finished
    lines: list[str] = []
    changed = _config(tiny_bert_dir, corpus, out, loadtest={"users": [1], "duration_s": 0.5, "warmup_s": 0.2})
    outcome = run_pipeline(changed, say=lines.append)
    assert outcome.failures == {}
    ran = [line for line in lines if line.startswith("[")]
    assert ran and all("load-test" in line or "serve" in line or "report" in line for line in ran)
    level_users = json.loads((out / "mha-l2" / "bench" / "fp32" / "loadtest.json").read_text())["settings"]["users"]
    assert level_users == [1]


def test_a_failing_student_is_reported_and_the_others_finish(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 7 relation heads do not divide the width 32: this student fails inside `studentpack distill`
    students = [{"name": "bad", "method": "mha", "layers": 2, "settings": {"relation_heads": 7}},
                {"name": "good", "method": "hs", "layers": 1}]  # fmt: skip
    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({**json.loads(json.dumps(_config_dict(tiny_bert_dir, corpus, tmp_path / "run"))),
                                  "students": students, "export_teacher": False,
                                  "loadtest": {"users": [1], "duration_s": 0.5, "warmup_s": 0.2}}))  # fmt: skip
    assert main(["pipeline", "--config", str(config.rename(config.with_suffix(".json")))]) == 1
    err = capsys.readouterr().err
    assert "FAILED distill bad" in err and "failed: distill:bad" in err
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert {r["run"] for r in report["rows"]} == {"teacher", "good"}


def _config_dict(teacher: Path, corpus: Path, out: Path) -> dict[str, Any]:
    from studentpack.config import to_dict

    return to_dict(_config(teacher, corpus, out))


def test_bad_settings_fail_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert main(["pipeline", "--out", str(out), "--set", "distill.lrr=1"]) == 2
    assert "unknown config key lrr" in capsys.readouterr().err
    assert main(["pipeline", "--out", str(out), "--data", str(tmp_path)]) == 2
    assert "neither stsb/ nor sst2/" in capsys.readouterr().err
    assert main(["pipeline", "--out", str(out), "--device", "cuda"]) == 2
    assert "CUDA" in capsys.readouterr().err
    assert not out.exists()


def test_the_shipped_full_example_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "full.yaml"
    for task, header in (("stsb", "sentence1\tsentence2\tscore"), ("sst2", "sentence\tlabel")):
        (tmp_path / task).mkdir()
        for split in ("train", "dev"):
            (tmp_path / task / f"{split}.tsv").write_text(header + "\n")
    assert main(["pipeline", "--config", str(example), "--set", f"data={tmp_path}", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["data"] == str(tmp_path) and len(printed["students"]) == 5
    assert main(["pipeline", "--config", str(example), "--print-config"]) == 0  # data null: agreement only
