"""`studentpack report` from hand-made artifacts with known figures: rows, % of teacher, frontier, SVG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from studentpack.bench.markdown import render
from studentpack.bench.plot import PLOT_FILE, plot
from studentpack.bench.report import build_report, write_report
from studentpack.cli import main
from studentpack.ground.provenance import hash_directory


def _model_dir(path: Path, payload: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "payload": payload}))
    return path


def _json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _variant(run: Path, variant: str, source_sha: str) -> Path:
    directory = run / "onnx" / variant
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(variant.encode() * 1000)
    _json(directory / "export.json", {"schema": "studentpack.export/1", "variant": variant, "status": "accepted",
                                      "source": {"sha256": source_sha}})  # fmt: skip
    return directory


def _loadtest(
    path: Path,
    model_dir: Path,
    p50: float,
    best: float,
    device: str = "cpu",
    server: str = "studentpack",
    users: tuple[int, ...] = (1, 8),
) -> None:
    """Levels at `users`: the first at `p50`, the others at 3x its latency and `best` texts/s."""
    levels = [
        {"users": users[0], "ok": 100, "texts_per_s": 1000 / p50, "latency_ms": {"p50": p50, "p95": p50 * 1.5,
                                                                                "p99": p50 * 2, "max": p50 * 3,
                                                                                "mean": p50}},
        *({"users": n, "ok": 100, "texts_per_s": best, "latency_ms": {"p50": p50 * 3, "p95": p50 * 4, "p99": p50 * 5,
                                                                      "max": p50 * 6, "mean": p50 * 3}}
          for n in users[1:]),
    ]  # fmt: skip
    _json(path, {"schema": "studentpack.loadtest/1", "created": "2026-01-01T00:00:00+00:00", "levels": levels,
                 "target": {"model_dir": str(model_dir), "server": server,
                            "info": {"sha256": hash_directory(model_dir), "device": device}},
                 "machine": {"cpu_model": "test CPU", "cpu_count": 2, "gpus": [], "machine": "x86_64",
                             "cpu_flags": ["avx2", "fma"]}, "notes": []})  # fmt: skip


def _eval(path: Path, key: str, model_dir: Path, value: float, served: bool = True, task: str = "stsb/zeroshot",
          metric: str = "spearman") -> None:  # fmt: skip
    data = json.loads(path.read_text()) if path.is_file() else {"format": "studentpack.eval/1", "results": {}}
    details: dict[str, Any] = {"model_sha256": hash_directory(model_dir)}
    if served:
        details["served"] = {"url": "http://127.0.0.1:1/v2/models/x"}
    name, mode = task.split("/")
    results = data["results"].setdefault(key, {})
    results[task] = {"task": name, "mode": mode, "metric": metric, "value": value, "n": 300, "data": f"{name}/dev.tsv",
                     "details": details, "created": "2026-01-01T00:00:00Z"}  # fmt: skip
    _json(path, data)


def _recall(path: Path, key: str, model_dir: Path, value: float) -> None:
    _eval(path, key, model_dir, value, task="agreement/zeroshot", metric="recall_at_10")


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    """Teacher (torch 10 ms, int8 5 ms), student a (fp32 4 ms, int8 2 ms) and student b, dominated: its
    int8 (3 ms) by a's int8, its fp32 by a's fp32 at the same latency (4 ms)."""
    root = tmp_path / "runs"
    teacher = _model_dir(tmp_path / "site" / "teacher", "teacher")
    t_sha = hash_directory(teacher)
    points = {"teacher": {"torch": (10.0, 100.0), "int8-dynamic": (5.0, 99.0)},
              "a": {"fp32": (4.0, 98.0), "int8-dynamic": (2.0, 97.0)},
              "b": {"fp32": (4.0, 97.5), "int8-dynamic": (3.0, 95.0)}}  # fmt: skip
    _loadtest(root / "teacher" / "bench" / "torch" / "loadtest.json", teacher, 10.0, 100.0)
    _eval(root / "teacher" / "eval.json", "served/teacher-torch", teacher, 100.0)
    for run, variants in points.items():
        run_dir = root / run
        if run == "teacher":
            source_sha = t_sha
        else:
            student = _model_dir(run_dir / "student", run)
            _json(student / "studentpack.json", {"format": "studentpack.distill/1", "method": "mha",
                  "teacher": {"sha256": t_sha, "layers": 6}, "student": {"layers": 3, "hidden": 384,
                  "parameters": 17_000_000}, "teacher_layer": 6, "relation_heads": 48,
                  "init_map": {"pairs": [[1, 1], [2, 3], [3, 6]]}})  # fmt: skip
            source_sha = hash_directory(student)
        for variant, (p50, score) in variants.items():
            if variant == "torch":
                continue
            directory = _variant(run_dir, variant, source_sha)
            _loadtest(run_dir / "bench" / variant / "loadtest.json", directory, p50, 1000.0 / p50 * 4)
            _eval(run_dir / "eval.json", f"served/{run}-{variant}", directory, score)
    return root


def test_rows_percentages_speedups_and_the_frontier(runs: Path) -> None:
    report = build_report([runs])
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {
        "teacher torch",
        "teacher int8-dynamic",
        "a fp32",
        "a int8-dynamic",
        "b fp32",
        "b int8-dynamic",
    }
    assert report["devices"] == ["cpu"]
    assert rows["teacher torch"]["baseline"] and rows["teacher torch"]["role"] == "teacher"
    assert rows["a int8-dynamic"]["metrics"]["stsb/zeroshot"]["pct_of_teacher"] == 97.0
    assert rows["a int8-dynamic"]["speedup_p50"] == 5.0  # 10 ms / 2 ms
    assert rows["a int8-dynamic"]["latency_ms"]["p95"] == 3.0
    assert rows["a int8-dynamic"]["best_throughput"] == {"texts_per_s": 2000.0, "users": 8}
    frontier = {name for name, r in rows.items() if r["frontier"]}
    assert frontier == {"teacher torch", "teacher int8-dynamic", "a fp32", "a int8-dynamic"}
    headline = report["headline"]["cpu"]
    assert headline["row"] == "a int8-dynamic" and headline["meets_accuracy_target"]
    assert headline["baseline_p50_ms"] == 10.0 and headline["cpu_class"] == "AVX2"
    assert headline["score_kind"] == "pct_of_teacher" and headline["target"] == 97.0
    assert rows["a fp32"]["method"].startswith("mha; 3x384")


def test_the_headline_is_the_fastest_student_keeping_97_percent(runs: Path) -> None:
    _eval(runs / "a" / "eval.json", "served/a-int8-dynamic", runs / "a" / "onnx" / "int8-dynamic", 96.5)
    headline = build_report([runs])["headline"]["cpu"]
    assert headline["row"] == "a fp32" and headline["score"] == 98.0 and headline["speedup_p50"] == 2.5
    _eval(runs / "a" / "eval.json", "served/a-fp32", runs / "a" / "onnx" / "fp32", 90.0)
    _eval(runs / "b" / "eval.json", "served/b-fp32", runs / "b" / "onnx" / "fp32", 96.8)
    headline = build_report([runs])["headline"]["cpu"]
    assert headline["row"] == "b fp32" and not headline["meets_accuracy_target"]  # none keeps 97%: the best


def test_a_local_result_is_used_only_without_a_served_one_and_is_marked(runs: Path, tmp_path: Path) -> None:
    variant = runs / "b" / "onnx" / "int8-dynamic"
    _eval(runs / "b" / "eval-local" / "eval.json", "onnx/int8-dynamic", variant, 50.0, served=False)
    rows = {r["name"]: r for r in build_report([runs])["rows"]}
    assert rows["b int8-dynamic"]["metrics"]["stsb/zeroshot"]["value"] == 95.0  # the served one wins
    (runs / "b" / "eval.json").unlink()
    report = build_report([runs])
    rows = {r["name"]: r for r in report["rows"]}
    entry = rows["b int8-dynamic"]["metrics"]["stsb/zeroshot"]
    assert entry["value"] == 50.0 and entry["served"] is False
    assert any("locally" in note and "b int8-dynamic" in note for note in report["notes"])


def test_cli_writes_markdown_json_and_an_svg(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    (tmp_path.parent / "last-fixture-pareto.svg").write_bytes((out / PLOT_FILE).read_bytes())
    _check_plot((out / PLOT_FILE).read_bytes(), ["teacher torch (baseline)", "a fp32", "b int8-dynamic"], points=6)
    markdown = (out / "report.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + 6  # header + one row per model x variant
    assert sum("★" in line for line in table) == 4 and sum("baseline" in line for line in table) == 1
    assert json.loads((out / "report.json").read_text())["schema"] == "studentpack.report/1"
    printed = capsys.readouterr().out
    assert "a int8-dynamic keeps 97.0% of the teacher on STS-B zero-shot and is 5.00x faster than the" in printed
    assert "than the baseline on AVX2 (2.00 ms against 10.00 ms" in printed


def _check_plot(document: bytes, names: list[str], points: int) -> ElementTree.Element:
    """A well-formed SVG naming each of `names`, with a marker per point."""
    root = ElementTree.fromstring(document)
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert all(name in texts for name in names), texts
    assert sum(e.get("class") == "marker" for e in root.iter()) == points
    return root


def test_the_plot_escapes_names_and_draws_an_empty_panel(runs: Path) -> None:
    report = build_report([runs])
    row = next(r for r in report["rows"] if r["name"] == "a fp32")
    row["name"] = 'a <fp32> & "b"'  # names come from directory names
    _check_plot(plot(report), ['a <fp32> & "b"', "b fp32"], points=6)
    for r in report["rows"]:
        r["score"] = None
    root = _check_plot(plot(report), ["no row with both accuracy and latency"], points=0)
    assert "cpu: accuracy vs served latency" in [t.text for t in root.iter() if t.tag.endswith("text")]


def test_one_panel_per_device_and_per_device_baselines(runs: Path, tmp_path: Path) -> None:
    teacher = Path(
        json.loads((runs / "teacher" / "bench" / "torch" / "loadtest.json").read_text())["target"]["model_dir"]
    )
    _loadtest(runs / "gpu" / "teacher" / "loadtest.json", teacher, 2.0, 3000.0, device="cuda:0")
    report = write_report([runs], tmp_path / "out")
    assert report["devices"] == ["cpu", "cuda:0"]
    gpu_rows = [r for r in report["rows"] if r["device"] == "cuda:0"]
    assert len(gpu_rows) == 1 and gpu_rows[0]["baseline"]
    panels = ["cpu: accuracy vs served latency", "cuda:0: accuracy vs served latency"]
    _check_plot(plot(report), panels, points=7)


def test_nothing_to_report_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "no studentpack artifacts" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_one_variant_behind_two_servers_is_shown_side_by_side(runs: Path, tmp_path: Path) -> None:
    variant = runs / "a" / "onnx" / "int8-dynamic"  # studentpack: p50 2 ms at 1 user, 2000 texts/s at 8
    _loadtest(runs / "triton" / "loadtest.json", variant, 4.0, 1000.0, server="triton")
    report = write_report([runs], tmp_path / "out")
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["a int8-dynamic on triton"]["server"] == "triton"
    assert rows["a int8-dynamic"]["latency_ms"]["p50"] == 2.0  # not replaced by the other server's test
    assert rows["teacher torch"]["baseline"] and not rows["a int8-dynamic on triton"]["baseline"]
    assert rows["a int8-dynamic on triton"]["speedup_p50"] == 2.5  # 10 ms / 4 ms, against the same baseline
    [entry] = report["side_by_side"]
    assert entry["model"] == "a int8-dynamic" and set(entry["servers"]) == {"studentpack", "triton"}
    ratios = {r["users"]: r for r in entry["ratios"]["triton"]}
    assert ratios[1] == {"users": 1, "throughput_studentpack_over_other": 2.0, "p50_other_over_studentpack": 2.0}
    assert ratios[8]["throughput_studentpack_over_other"] == 2.0  # 2000 against 1000 texts/s
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## a int8-dynamic on cpu: server by server" in markdown
    assert "| 8 | triton | 12.00 | 16.00 | 20.00 | 1000 | 2.00x | 2.00x |" in markdown


def test_without_labels_the_score_is_the_recall_and_the_target_the_validated_one(runs: Path) -> None:
    from studentpack.tasks.agreement import RECALL_AT_10_FOR_97

    for eval_file in runs.rglob("eval.json"):
        eval_file.unlink()
    baseline = json.loads((runs / "teacher" / "bench" / "torch" / "loadtest.json").read_text())
    teacher = Path(baseline["target"]["model_dir"])
    _recall(runs / "teacher" / "eval.json", "served/teacher-torch", teacher, 100.0)
    below, above = RECALL_AT_10_FOR_97 - 1.0, RECALL_AT_10_FOR_97 + 1.0
    _recall(runs / "a" / "eval.json", "served/a-int8-dynamic", runs / "a" / "onnx" / "int8-dynamic", below)
    _recall(runs / "a" / "eval.json", "served/a-fp32", runs / "a" / "onnx" / "fp32", above)
    report = build_report([runs])
    assert report["score"]["kind"] == "label_free" and report["score"]["target"] == RECALL_AT_10_FOR_97
    rows = {r["name"]: r for r in report["rows"]}
    entry = rows["a fp32"]["metrics"]["agreement/zeroshot"]
    assert entry["pct_of_teacher"] is None and rows["a fp32"]["score"] == above  # a recall, not a % of the teacher
    headline = report["headline"]["cpu"]
    assert headline["row"] == "a fp32" and headline["meets_accuracy_target"]  # int8 is faster but below target
    assert "retrieves" in render(report) and "% of the teacher" not in render(report).split("## cpu")[1].split("\n")[2]


def test_rows_are_compared_at_the_baseline_concurrency_level(runs: Path) -> None:
    """A row whose lowest level was 8 users must not beat rows measured at 1 user on its c=8 p50."""
    variant = runs / "b" / "onnx" / "int8-dynamic"
    _loadtest(runs / "b" / "bench" / "int8-dynamic" / "loadtest.json", variant, 1.0, 9000.0, users=(8,))
    _eval(runs / "b" / "eval.json", "served/b-int8-dynamic", variant, 99.5)
    report = build_report([runs])
    rows = {r["name"]: r for r in report["rows"]}
    assert report["compared_users"] == {"cpu": 1}
    assert rows["b int8-dynamic"]["compared_p50_ms"] is None and not rows["b int8-dynamic"]["frontier"]
    assert rows["b int8-dynamic"]["speedup_p50"] is None
    assert report["headline"]["cpu"]["row"] == "a int8-dynamic"
    _loadtest(runs / "b" / "bench" / "int8-dynamic" / "loadtest.json", variant, 1.0, 9000.0, users=(1, 8))
    assert build_report([runs])["headline"]["cpu"]["row"] == "b int8-dynamic"  # measured at 1 user, it wins


def test_among_equally_fast_students_the_headline_names_the_more_accurate(runs: Path) -> None:
    """Same-shape students serve at the same speed; a p50 2% lower is noise, not a reason to pick the worse."""
    variant = runs / "b" / "onnx" / "int8-dynamic"
    _loadtest(runs / "b" / "bench" / "int8-dynamic" / "loadtest.json", variant, 2.04, 2000.0)  # a: 2.0 ms
    _eval(runs / "b" / "eval.json", "served/b-int8-dynamic", variant, 97.5)  # a's int8 keeps 97.0
    assert build_report([runs])["headline"]["cpu"]["row"] == "b int8-dynamic"
    _loadtest(runs / "b" / "bench" / "int8-dynamic" / "loadtest.json", variant, 2.2, 2000.0)  # 10% slower: not level
    assert build_report([runs])["headline"]["cpu"]["row"] == "a int8-dynamic"
    _loadtest(runs / "b" / "bench" / "int8-dynamic" / "loadtest.json", variant, 2.04, 2000.0)
    _eval(runs / "b" / "eval.json", "served/b-int8-dynamic", variant, 96.9)  # below the target: not named
    assert build_report([runs])["headline"]["cpu"]["row"] == "a int8-dynamic"


def test_the_target_holds_on_every_labelled_metric_not_on_their_mean(runs: Path) -> None:
    teacher = Path(
        json.loads((runs / "teacher" / "bench" / "torch" / "loadtest.json").read_text())["target"]["model_dir"]
    )
    _eval(runs / "teacher" / "eval.json", "served/teacher-torch", teacher, 100.0, task="sst2/probe")
    int8, fp32 = runs / "a" / "onnx" / "int8-dynamic", runs / "a" / "onnx" / "fp32"
    _eval(runs / "a" / "eval.json", "served/a-int8-dynamic", int8, 99.0)
    _eval(runs / "a" / "eval.json", "served/a-int8-dynamic", int8, 96.0, task="sst2/probe")  # mean 97.5
    _eval(runs / "a" / "eval.json", "served/a-fp32", fp32, 98.0, task="sst2/probe")  # 98 and 98
    report = build_report([runs])
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["a int8-dynamic"]["score"] == 97.5 and rows["a int8-dynamic"]["score_floor"] == 96.0
    headline = report["headline"]["cpu"]
    assert headline["row"] == "a fp32" and headline["meets_accuracy_target"] and headline["score_floor"] == 98.0
