"""`studentpack distill` end to end on a tiny teacher, and every bad input as a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studentpack.cli import main
from tests.tiny import SENTENCES

FAST = ["--steps", "6", "--batch-size", "4", "--log-every", "2", "--checkpoint-every", "3", "--threads", "1", "--quiet"]


def distill(teacher: Path, corpus: Path, out: Path, *extra: str) -> int:
    return main(["distill", "--teacher", str(teacher), "--corpus", str(corpus), "--out", str(out), *FAST, *extra])


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("mha", []),
        ("hs", ["--layer-map", "1:2,2:4", "--hs-embeddings"]),
        ("od", ["--fit-head-steps", "5", "--mlm-weight", "0.1"]),
        ("hs+mha", ["--student-hidden", "16", "--student-heads", "2"]),
        ("emb", []),
        ("emb+mha", ["--student-hidden", "16", "--student-heads", "2"]),
    ],
)
def test_each_method_writes_a_loadable_student(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, method: str, extra: list[str]
) -> None:
    from transformers import AutoModel

    out = tmp_path / "run"
    assert distill(tiny_bert_dir, corpus, out, "--method", method, "--student-layers", "2", *extra) == 0
    student = out / "student"
    model = AutoModel.from_pretrained(str(student))
    assert model.config.num_hidden_layers == 2
    assert (student / "tokenizer.json").is_file() or (student / "vocab.txt").is_file()
    manifest = json.loads((student / "studentpack.json").read_text())
    for key in ("teacher", "method", "config", "layer_map", "relation_heads", "teacher_layer", "corpus", "steps",
                "seed", "init", "versions", "final_terms", "wall_seconds_this_process", "tokens_per_s"):  # fmt: skip
        assert key in manifest, key
    assert manifest["method"] == method
    assert len(manifest["teacher"]["sha256"]) == 64
    assert manifest["corpus"]["texts"] == len(SENTENCES) * 4
    assert manifest["corpus_tokens"]["tokens"] > 0
    assert manifest["init"]["kind"] == ("random" if "--student-hidden" in extra else "teacher-layers")
    if method == "od":
        assert manifest["teacher_head"]["source"] == "fitted"
        assert set(manifest["final_terms"]) == {"od", "mlm", "loss"}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]
    assert all(r["tokens_per_s"] > 0 for r in log)


def test_config_file_and_set_overrides(tiny_bert_dir: Path, corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"teacher: {tiny_bert_dir}\ncorpus: [{corpus}]\nmethod: hs\nstudent: {{layers: 1}}\nlr: 0.001\n")
    out = tmp_path / "run"
    rc = main(["distill", "--config", str(config), "--set", "student.layers=2", "--set", "hs_loss=cosine",
               "--out", str(out), *FAST])  # fmt: skip
    assert rc == 0
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert manifest["student"]["layers"] == 2
    assert manifest["config"]["hs_loss"] == "cosine"
    assert manifest["config"]["lr"] == 0.001


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, fragment: str) -> None:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("studentpack distill: error:")]
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]


def _bad_dir(tmp_path: Path, name: str, config: dict, files: dict[str, bytes]) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    for file, data in files.items():
        (path / file).write_bytes(data)
    return path


BERT_CONFIG = {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4,
               "intermediate_size": 64}  # fmt: skip


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing-teacher", "teacher path not found"),
        ("unsupported-teacher", "supported encoders"),
        ("pickle-only", "--allow-pickle"),
        ("no-weights", "has no weights"),
        ("empty-corpus", "holds no usable text"),
        ("missing-corpus", "corpus not found"),
        ("binary-corpus", "is not UTF-8"),
        ("table-without-text", "has no text column"),
        ("heads-do-not-divide", "not divisible"),
        ("layer-map-out-of-range", "out of range"),
        ("unknown-set-key", "unknown config key flavour"),
        ("wrong-type", "expected int"),
        ("bad-method", "is not one of"),
        ("relation-heads", "must divide both widths"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    case: str, fragment: str, tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher, text, extra = tiny_bert_dir, corpus, []
    if case == "missing-teacher":
        teacher = tmp_path / "nope" / "teacher"
    elif case == "unsupported-teacher":
        teacher = _bad_dir(tmp_path, "gpt", {"model_type": "gpt2"}, {"model.safetensors": b""})
    elif case == "pickle-only":
        teacher = _bad_dir(tmp_path, "pkl", BERT_CONFIG, {"pytorch_model.bin": b"\x80\x04."})
    elif case == "no-weights":
        teacher = _bad_dir(tmp_path, "empty", BERT_CONFIG, {})
    elif case == "empty-corpus":
        text = tmp_path / "empty.txt"
        text.write_text("\n\n")
    elif case == "missing-corpus":
        text = tmp_path / "missing.txt"
    elif case == "binary-corpus":
        text = tmp_path / "binary.txt"
        text.write_bytes(b"\xff\xfe\x00\x81" * 100)
    elif case == "table-without-text":
        text = tmp_path / "scores.tsv"
        text.write_text("id\tscore\n1\t4.5\n")
    elif case == "heads-do-not-divide":
        extra = ["--student-hidden", "30", "--student-heads", "4"]
    elif case == "layer-map-out-of-range":
        extra = ["--method", "hs", "--student-layers", "2", "--layer-map", "1:2,2:9"]
    elif case == "unknown-set-key":
        extra = ["--set", "flavour=vanilla"]
    elif case == "wrong-type":
        extra = ["--set", "steps=many"]
    elif case == "bad-method":
        extra = ["--method", "dark-magic"]
    elif case == "relation-heads":
        extra = ["--method", "mha", "--relation-heads", "5"]
    out = tmp_path / "out"
    rc = distill(teacher, text, out, *extra)
    _one_line_error(capsys, rc, fragment)
    assert not out.exists(), "a refused run must not create its output directory"


def test_refuses_to_overwrite_a_finished_run(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert distill(tiny_bert_dir, corpus, out, "--student-layers", "1") == 0
    before = (out / "student" / "model.safetensors").read_bytes()
    capsys.readouterr()
    _one_line_error(
        capsys, distill(tiny_bert_dir, corpus, out, "--student-layers", "1"), "already holds a finished run"
    )
    assert (out / "student" / "model.safetensors").read_bytes() == before
    assert distill(tiny_bert_dir, corpus, out, "--student-layers", "1", "--seed", "3", "--overwrite") == 0
    assert (out / "student" / "model.safetensors").read_bytes() != before


def test_refuses_a_foreign_out_directory(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    rc = distill(tiny_bert_dir, corpus, out, "--overwrite")
    _one_line_error(capsys, rc, "is not a studentpack run directory")
    assert (out / "holiday.jpg").read_bytes() == b"jpeg"


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_resume_needs_a_checkpoint(state: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    if state == "empty":
        run.mkdir()
    rc = main(["distill", "--resume", str(run)])
    _one_line_error(capsys, rc, "no such run directory" if state == "missing" else "no checkpoint to resume from")


def test_cuda_without_a_gpu_fails_loudly(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the guard is for machines without one")
    rc = distill(tiny_bert_dir, corpus, tmp_path / "out", "--device", "cuda")
    _one_line_error(capsys, rc, "no CUDA device")


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["mha", "hs", "od"])
def test_each_method_distils_on_cuda_in_bf16(tiny_bert_dir: Path, corpus: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "run"
    extra = ["--fit-head-steps", "3"] if method == "od" else []  # od fits the teacher's MLM head first
    cuda = ["--device", "cuda", "--precision", "bf16"]
    assert distill(tiny_bert_dir, corpus, out, "--method", method, *cuda, *extra) == 0
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    assert all(value == value for value in manifest["final_terms"].values())  # no NaN from the bf16 steps


@pytest.mark.parametrize("method", ["mha", "hs", "od"])
def test_roberta_family_teacher(method: str, corpus: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    from tests.tiny import save_roberta_dir

    teacher = save_roberta_dir(tmp_path / "roberta")
    out = tmp_path / "run"
    assert distill(teacher, corpus, out, "--method", method, "--student-layers", "1", "--fit-head-steps", "3") == 0
    student = AutoModel.from_pretrained(str(out / "student"))
    assert type(student).__name__ == "RobertaModel" and student.config.num_hidden_layers == 1


def _checkpoints(out: Path) -> list[str]:
    root = out / "checkpoints"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_finished_run_deletes_its_checkpoints_and_says_what_to_run_next(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "my run"
    capsys.readouterr()
    assert distill(tiny_bert_dir, corpus, out, "--student-layers", "1") == 0
    printed = capsys.readouterr().out
    assert not (out / "checkpoints").exists(), _checkpoints(out)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no temporary leftovers"
    assert (out / "student" / "model.safetensors").is_file()
    assert json.loads((out / "student" / "studentpack.json").read_text())["config"]["keep_final_checkpoint"] is False
    student, variant = f"'{out / 'student'}'", f"'{out / 'onnx' / 'int8-dynamic'}'"  # quoted: the path has a space
    nexts = [line.removeprefix("next: ") for line in printed.splitlines() if line.startswith("next: ")]
    assert nexts == [
        f"studentpack eval {student} --task agreement",
        f"studentpack eval {student} --task stsb --data PATH/TO/stsb/dev.tsv",
        f"studentpack export {student} --onnx && studentpack serve {variant}",
    ]
    # --resume on it still says it is finished, checkpoints or not
    _one_line_error(capsys, main(["distill", "--resume", str(out)]), "this run already finished")


def test_keep_final_checkpoint_keeps_only_the_last(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert distill(tiny_bert_dir, corpus, out, "--student-layers", "1", "--keep-final-checkpoint") == 0
    assert _checkpoints(out) == ["step-00000006"]
    assert sorted(p.name for p in (out / "checkpoints" / "step-00000006").iterdir()) == [
        "bundle.safetensors", "optimizer.pt", "rng-0.pt", "state.json",
    ]  # fmt: skip
    assert "final checkpoint kept: " in capsys.readouterr().out
    assert json.loads((out / "student" / "studentpack.json").read_text())["config"]["keep_final_checkpoint"] is True
    _one_line_error(capsys, main(["distill", "--resume", str(out)]), "this run already finished")
    config = tmp_path / "run.yaml"  # the config key works too
    config.write_text("keep_final_checkpoint: true\nstudent: {layers: 1}\n")
    out2 = tmp_path / "run2"
    assert distill(tiny_bert_dir, corpus, out2, "--config", str(config)) == 0
    assert _checkpoints(out2) == ["step-00000006"]


def test_checkpoints_stay_until_the_student_is_written(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while saving the student deletes nothing: the run resumes from its last checkpoint."""
    from studentpack.distill import trainer

    real = trainer.write_student

    def broken(path: Path, *args: object, **kwargs: object) -> None:
        path.mkdir(parents=True)  # a half-written student directory, with no studentpack.json
        raise OSError("disk full")

    monkeypatch.setattr(trainer, "write_student", broken)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        distill(tiny_bert_dir, corpus, out, "--student-layers", "1")
    assert _checkpoints(out) == ["step-00000003", "step-00000006"]
    monkeypatch.setattr(trainer, "write_student", real)
    assert main(["distill", "--resume", str(out), "--quiet"]) == 0
    assert (out / "student" / "studentpack.json").is_file()
    assert not (out / "checkpoints").exists()


def test_snapshots_are_loadable_students_with_their_step(tiny_bert_dir: Path, corpus: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    out = tmp_path / "run"
    assert distill(tiny_bert_dir, corpus, out, "--snapshot-every", "2") == 0  # 6 steps: snapshots at 2 and 4
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snapshots == ["step-0000002", "step-0000004"]
    manifest = json.loads((out / "snapshots" / "step-0000004" / "studentpack.json").read_text())
    assert manifest["snapshot_step"] == 4 and manifest["tokens_seen"] > 0
    AutoModel.from_pretrained(str(out / "snapshots" / "step-0000002"))


def test_student_layers_start_as_the_mapped_teacher_layers(tiny_bert_dir: Path, corpus: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "run"
    # one step at a vanishing learning rate: the saved student is its initialisation
    assert distill(tiny_bert_dir, corpus, out, "--student-layers", "2", "--steps", "1", "--lr", "1e-30",
                   "--warmup", "0") == 0  # fmt: skip
    manifest = json.loads((out / "student" / "studentpack.json").read_text())
    pairs = manifest["init_map"]["pairs"]
    assert pairs == [[1, 1], [2, 4]]  # uniform-last: the student's top layer is the teacher's top layer
    teacher = load_file(str(tiny_bert_dir / "model.safetensors"))
    student = load_file(str(out / "student" / "model.safetensors"))

    def layer(weights: dict, index: int) -> dict:
        prefix = f"encoder.layer.{index}."
        return {k.split(prefix, 1)[1]: v for k, v in weights.items() if prefix in k}

    for s, t in pairs:
        mine, theirs = layer(student, s - 1), layer(teacher, t - 1)
        assert mine and mine.keys() == theirs.keys()
        for name in mine:
            assert torch.allclose(mine[name], theirs[name], rtol=0, atol=1e-12), (s, t, name)  # moved by ~lr at most
    embeddings = [k for k in student if "embeddings" in k]
    assert embeddings and all(torch.allclose(student[k], teacher[k], rtol=0, atol=1e-12) for k in embeddings)
    assert not (
        layer(student, 1)["attention.self.query.weight"] == layer(teacher, 1)["attention.self.query.weight"]
    ).all()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("hs+emb", "emb+hs"), ("mha+hs", "hs+mha"), ("MHA + OD", "od+mha"), ("mha+hs+od", "od+hs+mha"), ("hs", "hs")],
)
def test_a_combination_may_name_its_methods_in_any_order(given: str, expected: str, tmp_path: Path) -> None:
    from studentpack.cli import build_parser
    from studentpack.commands.distill import resolve_config

    config = tmp_path / "run.yaml"
    config.write_text(f"method: {given}\n")
    for argv in (["distill", "--method", given], ["distill", "--config", str(config)],
                 ["distill", "--set", f"method={given}"]):  # fmt: skip
        assert resolve_config(build_parser().parse_args(argv)).method == expected, argv
