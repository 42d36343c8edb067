"""Untrusted files: each is refused with one clear line and a non-zero exit, and nothing in them runs.

Every hostile file here would create MARKER if it ever executed; the tests check both the refusal
and that MARKER never appears. Verbs are called in-process (the CLI's own `main`), `serve` as a
real process.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studentpack.cli import main as cli

MARKER = "pwned.txt"


class _RunsCode:
    """Unpickling this runs a shell command: what a hostile pytorch_model.bin can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def one_line_refusal(capsys: pytest.CaptureFixture[str], rc: int, fragment: str) -> None:
    err = capsys.readouterr().err.strip()
    assert rc != 0, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def copy_model(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / MARKER
    yield path
    assert not path.exists(), "a hostile file ran code"


def hostile_dirs(tiny: Path, root: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model directory, what the refusal must say)"""
    custom = copy_model(tiny, root / "custom-code")
    config = json.loads((custom / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoModel": "modeling_evil.EvilModel"})
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "modeling_evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")

    pickled = copy_model(tiny, root / "pickle", drop=("model.safetensors",))
    with (pickled / "pytorch_model.bin").open("wb") as handle:
        pickle.dump(_RunsCode(marker), handle)

    corrupt = copy_model(tiny, root / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])

    no_tokenizer = copy_model(tiny, root / "no-tokenizer")
    for file in no_tokenizer.iterdir():
        if "token" in file.name or file.name.startswith("vocab"):
            file.unlink()
    return {
        "custom-code": (custom, "supported encoders"),
        "pickle": (pickled, "--allow-pickle"),
        "corrupt-safetensors": (corrupt, "cannot load"),
        "no-tokenizer": (no_tokenizer, "tokenizer"),
    }


@pytest.fixture(scope="module")
def stsb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stsb") / "dev.tsv"
    rows = ["sentence1\tsentence2\tlabel"] + [f"a cat sat {i}\ta dog ran {i}\t{i % 5}" for i in range(12)]
    path.write_text("\n".join(rows) + "\n")
    return path


CASES = ["custom-code", "pickle", "corrupt-safetensors", "no-tokenizer"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("verb", ["distill", "eval", "export"])
def test_hostile_model_directories_are_refused(
    verb: str, case: str, tiny_bert_dir: Path, tmp_path: Path, marker: Path, stsb_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    model, fragment = hostile_dirs(tiny_bert_dir, tmp_path, marker)[case]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a line of text\n" * 50)
    argv = {
        "distill": ["distill", "--teacher", str(model), "--corpus", str(corpus), "--steps", "2", "--out",
                    str(tmp_path / "run")],
        "eval": ["eval", str(model), "--task", "stsb", "--data", str(stsb_file), "--no-save"],
        "export": ["export", str(model), "--onnx", "--out", str(tmp_path / "onnx")],
    }[verb]  # fmt: skip
    one_line_refusal(capsys, cli(argv), fragment)


@pytest.mark.parametrize("case", ["custom-code", "pickle"])
def test_serve_refuses_hostile_models(case: str, tiny_bert_dir: Path, tmp_path: Path, marker: Path) -> None:
    model, fragment = hostile_dirs(tiny_bert_dir, tmp_path, marker)[case]
    done = subprocess.run([sys.executable, "-m", "studentpack", "serve", str(model), "--port", "0"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != 0 and fragment in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_onnx_external_data_outside_its_directory_is_refused(
    tiny_bert_dir: Path, tmp_path: Path, stsb_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from tests.test_serve_e2e import export_variant

    variant = export_variant(tiny_bert_dir, tmp_path / "variant")
    model = onnx.load(str(variant / "model.onnx"))
    secret = tmp_path / "secret.bin"  # outside the variant: a path like ../../etc/shadow in a hostile file
    onnx.save_model(model, str(variant / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)  # fmt: skip
    (variant / "weights.bin").rename(secret)
    graph = onnx.load(str(variant / "model.onnx"), load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save_model(graph, str(variant / "model.onnx"))
    rc = cli(["eval", str(variant), "--task", "stsb", "--data", str(stsb_file), "--no-save"])
    one_line_refusal(capsys, rc, "outside the model's directory")


@pytest.mark.parametrize("verb", ["serve", "pipeline", "distill"])
def test_yaml_with_python_tags_is_refused(
    verb: str, tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "evil.yaml"
    config.write_text(f"steps: !!python/object/apply:os.system ['touch {marker}']\n")
    argv = [verb, "--config", str(config)] + (["m"] if verb == "serve" else [])
    one_line_refusal(capsys, cli(argv), str(config))


@pytest.mark.parametrize(("content", "fragment"), [(b"", "holds no usable text"), (b"\x00\xff\x81" * 300, "UTF-8")])
def test_empty_and_binary_corpora_are_refused(
    content: bytes, fragment: str, tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    rc = cli(["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--steps", "2", "--out",
              str(tmp_path / "run")])  # fmt: skip
    one_line_refusal(capsys, rc, fragment)
    assert not (tmp_path / "run").exists()


def test_custom_code_named_by_a_known_model_type_is_never_run(
    tiny_bert_dir: Path, tmp_path: Path, marker: Path, stsb_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A BERT config that also names custom classes (auto_map) loads as plain BERT: the module is not imported."""
    model = copy_model(tiny_bert_dir, tmp_path / "bert-with-auto-map")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}
    (model / "config.json").write_text(json.dumps(config))
    (model / "modeling_evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    assert cli(["eval", str(model), "--task", "stsb", "--data", str(stsb_file), "--no-save"]) == 0
    assert not marker.exists()
