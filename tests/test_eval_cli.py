"""`studentpack eval` end to end on tiny real models built in-process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studentpack.tasks import data as D
from studentpack.tasks import sets
from tests.test_eval_support import (
    perturbed_copy,
    reference_embeddings,
    run_cli,
    run_json,
    sentence_pairs,
    sst2_dir,
    stsb_tsv,
    write_table,
)


@pytest.fixture(scope="module")
def stsb_known(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """Gold scores that are a linear function of an independently computed cosine: Spearman must be 100."""
    candidates = sentence_pairs(40)
    a = reference_embeddings(tiny_bert_dir, [p[0] for p in candidates])
    b = reference_embeddings(tiny_bert_dir, [p[1] for p in candidates])
    all_cosines = np.sum(a * b, axis=1)
    keep: list[int] = []  # cosines at least 1e-4 apart, so batching noise (~1e-6) cannot reorder them
    for i in np.argsort(all_cosines):
        if not keep or all_cosines[i] - all_cosines[keep[-1]] >= 1e-4:
            keep.append(int(i))
    keep = sorted(keep)[:24]
    assert len(keep) == 24
    pairs, cosines = [candidates[i] for i in keep], all_cosines[keep]
    gold = 2.5 + 2.5 * cosines
    root = tmp_path_factory.mktemp("stsb")
    return stsb_tsv(root / "dev.tsv", [(x, y, s) for (x, y), s in zip(pairs, gold, strict=True)])


@pytest.fixture(scope="module")
def sst2_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sst2_dir(tmp_path_factory.mktemp("sst2"))


@pytest.fixture
def model_copy(tmp_path: Path, tiny_bert_dir: Path) -> Path:
    """The tiny model inside a fresh run directory, so eval.json lands in tmp_path."""
    return Path(shutil.copytree(tiny_bert_dir, tmp_path / "run" / "student"))


JSON_KEYS = {
    "task": str,
    "mode": str,
    "metric": str,
    "value": float,
    "n": int,
    "model": str,
    "data": str,
    "seconds": float,
    "truncated": int,
    "max_length": int,
    "metrics": dict,
    "details": dict,
    "studentpack": str,
    "created": str,
}


def test_stsb_zeroshot_equals_an_independent_computation(capsys, tiny_bert_dir: Path, stsb_known: Path) -> None:
    result = run_json(capsys, str(tiny_bert_dir), "--task", "stsb", "--data", str(stsb_known), "--no-save")
    assert result["metric"] == "spearman"
    assert result["value"] == pytest.approx(100.0, abs=1e-6)
    assert result["metrics"]["pearson"] == pytest.approx(100.0, abs=1e-3)
    assert (result["task"], result["mode"], result["n"], result["truncated"]) == ("stsb", "zeroshot", 24, 0)


def test_json_schema(capsys, tiny_bert_dir: Path, stsb_known: Path) -> None:
    result = run_json(capsys, str(tiny_bert_dir), "--task", "stsb", "--data", str(stsb_known), "--no-save")
    assert set(result) == set(JSON_KEYS)
    for key, kind in JSON_KEYS.items():
        assert isinstance(result[key], kind), key
    assert result["value"] == result["metrics"][result["metric"]]
    assert result["model"] == str(tiny_bert_dir) and result["data"] == str(stsb_known)
    assert result["max_length"] == 64  # the tiny model's own limit caps the default 128
    assert len(result["details"]["model_sha256"]) == 64


def test_table_output_and_limit(capsys, tiny_bert_dir: Path, stsb_known: Path) -> None:
    code, out, err = run_cli(capsys, str(tiny_bert_dir), "--task", "stsb", "--data", str(stsb_known), "--no-save")
    assert code == 0 and err == ""
    assert "spearman" in out and "100.00  <- metric" in out and "24 (0 truncated at 64 tokens)" in out
    result = run_json(capsys, str(tiny_bert_dir), "--task", "stsb", "--data", str(stsb_known), "--limit", "5")
    assert result["n"] == 5


def test_eval_json_next_to_the_model_merges_tasks(
    capsys, model_copy: Path, stsb_known: Path, sst2_data: Path, tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, str(model_copy), "--task", "stsb", "--data", str(stsb_known))
    assert code == 0
    path = model_copy.parent / "eval.json"
    assert f"result saved to {path}" in err
    run_cli(capsys, str(model_copy), "--task", "sst2", "--data", str(sst2_data), "--quiet")
    saved = json.loads(path.read_text())
    assert saved["format"] == "studentpack.eval/1"
    assert set(saved["results"]["student"]) == {"stsb/zeroshot", "sst2/probe"}
    assert saved["results"]["student"]["stsb/zeroshot"]["value"] == pytest.approx(100.0, abs=1e-6)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_out_and_no_save(capsys, model_copy: Path, stsb_known: Path, tmp_path: Path) -> None:
    run_cli(capsys, str(model_copy), "--task", "stsb", "--data", str(stsb_known), "--no-save")
    assert not (model_copy.parent / "eval.json").exists()
    run_cli(capsys, str(model_copy), "--task", "stsb", "--data", str(stsb_known), "--out", str(tmp_path / "r.json"))
    run_cli(capsys, str(model_copy), "--task", "stsb", "--data", str(stsb_known), "--out", str(tmp_path / "d"))
    assert (tmp_path / "r.json").is_file() and (tmp_path / "d" / "eval.json").is_file()
    assert not (model_copy.parent / "eval.json").exists()


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[float, Path]:
    root = tmp_path_factory.mktemp("perturbed")
    return {scale: perturbed_copy(tiny_bert_dir, root / str(scale), scale) for scale in (0.05, 0.5)}


def test_agreement_with_itself_is_100_and_perturbed_copies_lower(
    capsys, tiny_bert_dir: Path, perturbed: dict[float, Path], stsb_known: Path
) -> None:
    base = [str(tiny_bert_dir), "--task", "agreement", "--data", str(stsb_known), "--no-save"]
    same = run_json(capsys, *base, "--teacher", str(tiny_bert_dir))
    assert same["metric"] == "recall_at_10" and same["value"] == 100.0
    assert same["metrics"]["mean_cosine"] == pytest.approx(100.0, abs=1e-4)
    assert same["metrics"]["rank_spearman"] == 100.0
    pairs = sets.stsb_pairs(D.read_table(str(stsb_known)), sets.Columns())
    assert same["n"] == len(set(pairs.first + pairs.second)) > 10  # every distinct sentence of the pairs
    small = run_json(capsys, *base, "--teacher", str(perturbed[0.05]))
    large = run_json(capsys, *base, "--teacher", str(perturbed[0.5]))
    assert 100.0 > small["metrics"]["rank_spearman"] > large["metrics"]["rank_spearman"]
    assert 100.0 >= small["value"] >= large["value"]
    assert 100.0 > small["metrics"]["mean_cosine"] > large["metrics"]["mean_cosine"]
    assert small["details"]["teacher"] == str(perturbed[0.05])


def test_agreement_teacher_from_manifest_and_default_text(capsys, model_copy: Path, tiny_bert_dir: Path) -> None:
    (model_copy / "studentpack.json").write_text(json.dumps({"teacher": {"path": str(tiny_bert_dir)}}))
    result = run_json(capsys, str(model_copy), "--task", "agreement", "--limit", "20", "--no-save")
    assert result["details"]["teacher"] == str(tiny_bert_dir)
    assert result["data"] == "embedded:heldout" and result["n"] == 20
    assert result["value"] == 100.0  # a copy of its teacher


def test_long_texts_are_truncated_and_counted(capsys, tiny_bert_dir: Path, tmp_path: Path) -> None:
    pairs = [
        (f"the film was very good and the story was great {i}", f"a bad movie with a story {i}", i % 5)
        for i in range(6)
    ]
    path = stsb_tsv(tmp_path / "long.tsv", pairs)
    args = [str(tiny_bert_dir), "--task", "stsb", "--data", str(path), "--no-save"]
    assert run_json(capsys, *args)["truncated"] == 0
    result = run_json(capsys, *args, "--max-length", "8")
    assert result["truncated"] == 12 and result["max_length"] == 8  # every distinct sentence is longer than 8


def test_probe_counts_eval_truncation_apart_from_train(capsys, tiny_bert_dir: Path, tmp_path: Path) -> None:
    long = [(i % 2, "the film was very good and the story was great " + str(i)) for i in range(8)]
    short = [(i % 2, f"good {i}") for i in range(4)]
    write_table(tmp_path / "train.tsv", ["label", "sentence"], long)
    write_table(tmp_path / "dev.tsv", ["label", "sentence"], short)
    args = [str(tiny_bert_dir), "--task", "sst2", "--data", str(tmp_path), "--max-length", "8", "--no-save"]
    result = run_json(capsys, *args)
    assert result["truncated"] == 0 and result["details"]["train_truncated"] == 8


def test_sst2_probe_on_separable_data(capsys, tiny_bert_dir: Path, sst2_data: Path) -> None:
    result = run_json(capsys, str(tiny_bert_dir), "--task", "sst2", "--data", str(sst2_data), "--no-save")
    assert (result["mode"], result["metric"], result["value"], result["n"]) == ("probe", "accuracy", 100.0, 20)
    assert result["details"]["train_n"] == 20 and result["details"]["train_data"] == str(sst2_data / "train.tsv")


FINETUNE = ["--epochs", "10", "--lr", "1e-3", "--train-batch-size", "4", "--seed", "3"]


def test_sst2_finetune_saves_a_reproducible_classifier(
    capsys, model_copy: Path, sst2_data: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file
    from transformers import AutoModelForSequenceClassification

    base = [str(model_copy), "--task", "sst2", "--data", str(sst2_data), "--mode", "finetune", *FINETUNE]
    first = run_json(capsys, *base)
    out = model_copy.parent / "sst2"  # default: <model>/../<task>
    assert first["details"]["saved_model"] == str(out)
    assert first["value"] >= 90.0 and first["details"]["final_loss"] < first["details"]["first_loss"]
    second = run_json(capsys, *base, "--out", str(tmp_path / "again"))
    assert second["value"] == first["value"] and second["details"]["final_loss"] == first["details"]["final_loss"]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    model = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert model.config.id2label == {0: "negative", 1: "positive"}
    manifest = json.loads((out / "studentpack.json").read_text())
    assert manifest["format"] == "studentpack.finetune/1" and manifest["task"] == "sst2"
    assert manifest["eval"]["value"] == first["value"]
    # the saved directory scores the same through open_model (predict mode is the default for classifiers)
    again = run_json(capsys, str(out), "--task", "sst2", "--data", str(sst2_data), "--no-save")
    assert again["mode"] == "predict" and again["value"] == first["value"]
    saved = json.loads((model_copy.parent / "eval.json").read_text())
    assert saved["results"]["student"]["sst2/finetune"]["value"] == first["value"]


def test_stsb_finetune_regression_head(capsys, model_copy: Path, stsb_known: Path, tmp_path: Path) -> None:
    shutil.copy(stsb_known, tmp_path / "train.tsv")
    shutil.copy(stsb_known, tmp_path / "dev.tsv")
    out = tmp_path / "stsb-model"
    args = [str(model_copy), "--task", "stsb", "--data", str(tmp_path), "--mode", "finetune", "--out", str(out)]
    result = run_json(capsys, *args, *FINETUNE)
    assert result["mode"] == "finetune" and result["details"]["steps"] == 60
    assert -100.0 <= result["value"] <= 100.0
    again = run_json(capsys, str(out), "--task", "stsb", "--data", str(tmp_path), "--no-save")
    assert again["mode"] == "predict" and again["value"] == pytest.approx(result["value"], abs=1e-4)


def test_stsb_biencoder_saves_a_sentence_embedder_that_serve_and_export_take(
    capsys, model_copy: Path, tmp_path: Path
) -> None:
    """The bi-encoder trains the embedding itself: its saved directory is scored zero-shot with the same
    Spearman, exports to ONNX with parity, and is served by `studentpack serve`."""
    import httpx

    from studentpack.engines import open_model
    from tests.test_serve_e2e import start

    gold = np.random.default_rng(0).uniform(0, 5, 24)  # scores the untrained cosines do not rank
    rows = [(a, b, float(s)) for (a, b), s in zip(sentence_pairs(24), gold, strict=True)]
    stsb_tsv(tmp_path / "train.tsv", rows)
    stsb_tsv(tmp_path / "dev.tsv", rows)
    before = run_json(capsys, str(model_copy), "--task", "stsb", "--data", str(tmp_path), "--no-save")
    out = tmp_path / "embedder"
    args = [str(model_copy), "--task", "stsb", "--data", str(tmp_path), "--mode", "biencoder", "--out", str(out)]
    result = run_json(capsys, *args, *FINETUNE)
    assert result["mode"] == "biencoder" and result["details"]["protocol"].startswith("bi-encoder")
    assert result["details"]["final_loss"] < result["details"]["first_loss"]
    assert result["value"] > before["value"]  # trained on these very pairs: the ranking must improve
    again = run_json(capsys, str(out), "--task", "stsb", "--data", str(tmp_path), "--no-save")
    assert again["mode"] == "zeroshot" and again["value"] == pytest.approx(result["value"], abs=1e-4)
    assert json.loads((out / "studentpack.json").read_text())["kind"] == "finetuned-embedder"

    from studentpack.cli import main

    assert main(["export", str(out), "--onnx", "--variants", "fp32", "--out", str(tmp_path / "onnx")]) == 0
    texts = ["a cat sat on the mat", "the dog ran home"]
    graph = open_model(str(tmp_path / "onnx" / "fp32")).encode(texts)
    np.testing.assert_allclose(graph, open_model(str(out)).encode(texts), atol=1e-4)
    server = start([sys.executable, "-m", "studentpack", "serve", f"m={out}", "--port", "0", "--threads", "1"])
    try:
        body = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m", "input": texts}, timeout=60).json()
    finally:
        server.stop()
    served = np.asarray([row["embedding"] for row in body["data"]])
    np.testing.assert_allclose(served, open_model(str(out)).encode(texts), atol=1e-5)


def test_config_file_and_set(capsys, tiny_bert_dir: Path, stsb_known: Path, tmp_path: Path) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(f"model: {tiny_bert_dir}\ntask: stsb\ndata: {stsb_known}\nlimit: 4\nsave: false\n")
    assert run_json(capsys, "--config", str(config))["n"] == 4
    assert run_json(capsys, "--config", str(config), "--set", "limit=6")["n"] == 6
    assert run_json(capsys, "--config", str(config), "--limit", "7")["n"] == 7


def test_help_imports_no_torch() -> None:
    code = (
        "import sys\nfrom studentpack.cli import main\n"
        "try:\n    main(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--task" in done.stdout


# ------------------------------------------------------------------------------------------------ bad input


def _bad_inputs(root: Path, model: Path) -> dict[str, tuple[list[str], str]]:
    good_stsb = stsb_tsv(root / "ok" / "dev.tsv", [("a", "b", 1.0), ("c", "d", 2.0)])
    no_cols = write_table(root / "nocols.tsv", ["sentence", "score"], [("a", 1)])
    bad_label = write_table(root / "badlabel" / "dev.tsv", ["label", "sentence"], [(0, "a"), (3, "b")])
    bad_score = stsb_tsv(root / "badscore.tsv", [("a", "b", 7.0)])
    empty = write_table(root / "empty" / "dev.tsv", ["label", "sentence"], [])
    empty_stsb = stsb_tsv(root / "empty.tsv", [])
    no_config = root / "noconfig"
    no_config.mkdir()
    broken = Path(shutil.copytree(model, root / "broken"))
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    gpt = Path(shutil.copytree(model, root / "gpt"))
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2Model"]}))
    existing = root / "exists"
    existing.mkdir()
    foreign = root / "foreign.json"
    foreign.write_text('{"something": "else"}')
    sst2_dev = write_table(root / "s" / "dev.tsv", ["label", "sentence"], [(0, "a"), (1, "b")])
    bad_jsonl = root / "bad.jsonl"
    bad_jsonl.write_text('{"sentence": "a", "label": 1}\nnot json\n')
    yaml = root / "c.yaml"
    yaml.write_text(f"model: {model}\ntask: stsb\ncolour: blue\n")
    m = str(model)
    return {
        "missing data file": ([m, "--task", "stsb", "--data", str(root / "nope.tsv")], "data not found"),
        "tsv without columns": ([m, "--task", "stsb", "--data", str(no_cols)], "no first-sentence column"),
        "label out of range": ([m, "--task", "sst2", "--data", str(bad_label.parent)], "label '3' is not one of"),
        "score out of range": ([m, "--task", "stsb", "--data", str(bad_score)], "is not a number in [0, 5]"),
        "empty split": ([m, "--task", "sst2", "--data", str(empty.parent)], "holds no examples"),
        "empty stsb file": ([m, "--task", "stsb", "--data", str(empty_stsb)], "holds no examples"),
        "missing model": ([str(root / "nomodel"), "--task", "stsb", "--data", str(good_stsb)], "not found"),
        "model without config": ([str(no_config), "--task", "stsb", "--data", str(good_stsb)], "no config.json"),
        "unloadable weights": ([str(broken), "--task", "stsb", "--data", str(good_stsb)], "cannot load"),
        "unsupported model": ([str(gpt), "--task", "stsb", "--data", str(good_stsb)], "gpt2"),
        "unknown mode": ([m, "--task", "stsb", "--mode", "probe", "--data", str(good_stsb)], "has no mode 'probe'"),
        "predict on encoder": ([m, "--task", "stsb", "--mode", "predict", "--data", str(good_stsb)], "predict"),
        "probe without train": ([m, "--task", "sst2", "--data", str(sst2_dev)], "needs a train split"),
        "finetune out exists": (
            [m, "--task", "sst2", "--mode", "finetune", "--data", str(sst2_dev), "--out", str(existing)],
            "already exists",
        ),
        "zero limit": ([m, "--task", "stsb", "--data", str(good_stsb), "--limit", "0"], "at least 1"),
        "bad jsonl": ([m, "--task", "agreement", "--teacher", m, "--data", str(bad_jsonl)], "line 2 is not valid"),
        "no task": ([m, "--data", str(good_stsb)], "give --task"),
        "no model": (["--task", "stsb"], "give a MODEL"),
        "foreign eval.json": ([m, "--task", "stsb", "--data", str(good_stsb), "--out", str(foreign)], "not a studentp"),
        "unknown config key": (["--config", str(yaml)], "unknown config key colour"),
        "missing teacher": ([m, "--task", "agreement", "--teacher", str(root / "t")], "teacher path not found"),
        "unknown column": ([m, "--task", "stsb", "--data", str(good_stsb), "--label-column", "gold"], "no column"),
        "cuda without gpu": ([m, "--task", "stsb", "--data", str(good_stsb), "--device", "cuda:7"], "cuda"),
    }


BAD_CASES = [
    "missing data file",
    "tsv without columns",
    "label out of range",
    "score out of range",
    "empty split",
    "empty stsb file",
    "missing model",
    "model without config",
    "unloadable weights",
    "unsupported model",
    "unknown mode",
    "predict on encoder",
    "probe without train",
    "finetune out exists",
    "zero limit",
    "bad jsonl",
    "no task",
    "no model",
    "foreign eval.json",
    "unknown config key",
    "missing teacher",
    "unknown column",
    "cuda without gpu",
]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, tuple[list[str], str]]:
    return _bad_inputs(tmp_path_factory.mktemp("bad"), tiny_bert_dir)


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2(capsys, bad_inputs: dict[str, tuple[list[str], str]], case: str) -> None:
    import torch

    assert set(bad_inputs) == set(BAD_CASES)
    args, message = bad_inputs[case]
    if case == "cuda without gpu" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("studentpack eval: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert message in err


def test_onnx_variant_is_scored_by_the_same_code(capsys, tiny_bert_dir: Path, stsb_known: Path, tmp_path: Path) -> None:
    """An exported fp32 variant goes through open_model -> OrtEncoder and scores what the torch model scores."""
    pytest.importorskip("onnxruntime")
    from studentpack.cli import main

    assert main(["export", str(tiny_bert_dir), "--onnx", "--variants", "fp32", "--out", str(tmp_path / "onnx")]) == 0
    capsys.readouterr()
    variant = tmp_path / "onnx" / "fp32"
    torch_run = run_json(capsys, str(tiny_bert_dir), "--task", "stsb", "--data", str(stsb_known), "--no-save")
    onnx_run = run_json(capsys, str(variant), "--task", "stsb", "--data", str(stsb_known), "--no-save")
    assert onnx_run["value"] == pytest.approx(torch_run["value"], abs=1e-6)
    agree = run_json(
        capsys, str(variant), "--task", "agreement", "--teacher", str(tiny_bert_dir), "--limit", "50", "--no-save"
    )
    assert agree["value"] == pytest.approx(100.0, abs=1e-6)
    assert agree["metrics"]["min_cosine"] == pytest.approx(100.0, abs=1e-3)


@pytest.mark.parametrize("task", ["stsb", "sst2"])
def test_no_data_points_at_local_files_before_the_hub(
    capsys, monkeypatch: pytest.MonkeyPatch, tiny_bert_dir: Path, task: str
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # as on a base install: `import datasets` fails
    code, out, err = run_cli(capsys, str(tiny_bert_dir), "--task", task, "--no-save")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    message = err.removeprefix("studentpack eval: error: ")
    assert message.startswith(f"{task} needs eval data: pass --data FILE_OR_DIR"), message
    assert "train.* and dev.*" in message
    hub = message.index(f"hub:glue/{task}")
    assert message.index("--data FILE_OR_DIR") < hub < message.index("pip install 'studentpack[hub]'")
    assert "network" in message[hub - 40 :]


def test_a_runs_student_and_its_exported_variants_share_one_eval_json(
    capsys, model_copy: Path, stsb_known: Path, tmp_path: Path
) -> None:
    """<run>/student and <run>/onnx/<variant> (export's default --out) both report into <run>/eval.json."""
    pytest.importorskip("onnxruntime")
    from studentpack.cli import main

    run_dir = model_copy.parent
    assert main(["export", str(model_copy), "--onnx", "--variants", "fp32"]) == 0  # default --out <run>/onnx
    variant = run_dir / "onnx" / "fp32"
    assert (variant / "model.onnx").is_file()
    capsys.readouterr()
    data = ["--task", "stsb", "--data", str(stsb_known)]
    run_cli(capsys, str(model_copy), *data)
    code, _, err = run_cli(capsys, str(variant), *data)
    assert code == 0 and f"result saved to {run_dir / 'eval.json'}" in err, err
    assert not (run_dir / "onnx" / "eval.json").exists()
    results = json.loads((run_dir / "eval.json").read_text())["results"]
    assert set(results) == {"student", "onnx/fp32"}
    assert results["onnx/fp32"]["stsb/zeroshot"]["value"] == pytest.approx(
        results["student"]["stsb/zeroshot"]["value"], abs=1e-6
    )
    # an ONNX directory elsewhere keeps the rule <model>/../eval.json under its own name
    elsewhere = Path(shutil.copytree(variant, tmp_path / "models" / "mine"))
    run_cli(capsys, str(elsewhere), *data, "--quiet")
    assert set(json.loads((tmp_path / "models" / "eval.json").read_text())["results"]) == {"mine"}
