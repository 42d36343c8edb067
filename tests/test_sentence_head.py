"""A student narrower than its teacher ships its learnt projection as a sentence-transformers Dense.

Its embeddings must come out of every runtime (PyTorch, the ONNX graph, SentenceTransformer itself) in
the teacher's width, equal to pooling -> projection -> normalisation computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from studentpack.cli import main
from studentpack.engines.pytorch import open_torch
from studentpack.ground.errors import UserError
from studentpack.model import adapter
from studentpack.model.pooling import l2_normalize, mean_pool
from studentpack.model.sentence_head import load_sentence_head, save_dense
from tests.tiny import SENTENCES

FAST = ["--steps", "4", "--batch-size", "4", "--log-every", "2", "--checkpoint-every", "2", "--threads", "1", "--quiet"]
NARROW = ["--student-layers", "2", "--student-hidden", "16", "--student-heads", "2", "--student-intermediate", "32"]


def distill(teacher: Path, corpus: Path, out: Path, *extra: str) -> Path:
    rc = main(["distill", "--teacher", str(teacher), "--corpus", str(corpus), "--out", str(out), *FAST, *extra])
    assert rc == 0
    return out / "student"


@pytest.fixture(scope="module")
def emb_student(tiny_bert_dir: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return distill(tiny_bert_dir, corpus, tmp_path_factory.mktemp("emb") / "run", "--method", "emb", *NARROW)


def by_hand(student: Path, texts: list[str]) -> np.ndarray:
    """normalise(W · meanpool(states) + b), from the saved Dense weights: (N, 32)."""
    from safetensors.torch import load_file

    encoder = adapter.load_encoder(student).eval()
    tokenizer = adapter.load_tokenizer(student)
    dense = load_file(str(student / "2_Dense" / "model.safetensors"))
    feeds = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**feeds).last_hidden_state  # (N, T, 16)
        pooled = mean_pool(states, feeds["attention_mask"])  # (N, 16)
        return l2_normalize(pooled @ dense["linear.weight"].T + dense["linear.bias"]).numpy()  # (N, 32)


def test_a_narrow_emb_student_ships_its_projection(emb_student: Path) -> None:
    manifest = json.loads((emb_student / "studentpack.json").read_text())
    assert manifest["sentence_dense"] == {"from": "emb", "in": 16, "out": 32}
    modules = json.loads((emb_student / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert [m["idx"] for m in modules] == [0, 1, 2, 3]
    vectors = open_torch(emb_student).encode(SENTENCES[:5], batch_size=2)
    assert vectors.shape == (5, 32)
    np.testing.assert_allclose(vectors, by_hand(emb_student, SENTENCES[:5]), atol=1e-5)


def test_the_dense_is_the_projection_training_learnt(tiny_bert_dir: Path, corpus: Path, tmp_path: Path) -> None:
    """The shipped Dense equals the final checkpoint's EMB projection (not a fresh or an early one)."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    student = distill(tiny_bert_dir, corpus, run, "--method", "emb", *NARROW, "--keep-final-checkpoint")
    (checkpoint,) = sorted((run / "checkpoints").iterdir())
    trained = load_file(str(checkpoint / "bundle.safetensors"))
    shipped = load_file(str(student / "2_Dense" / "model.safetensors"))
    torch.testing.assert_close(shipped["linear.weight"], trained["transfers.emb.projection.weight"])
    torch.testing.assert_close(shipped["linear.bias"], trained["transfers.emb.projection.bias"])
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 4


@pytest.mark.parametrize(
    ("method", "layer_map", "source", "key"),
    [
        ("hs", "uniform-last", "hs", "transfers.hs.projections.2_4"),
        ("emb+hs", "last", "emb", "transfers.emb.projection"),
    ],
)
def test_hs_ships_the_top_pair_projection_and_emb_wins(
    method: str, layer_map: str, source: str, key: str, tiny_bert_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    """HS's Dense is its (student 2 -> teacher 4) pair's projection; with EMB there too, EMB's is shipped."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    student = distill(tiny_bert_dir, corpus, run, "--method", method, "--layer-map", layer_map, *NARROW,
                      "--keep-final-checkpoint")  # fmt: skip
    assert json.loads((student / "studentpack.json").read_text())["sentence_dense"]["from"] == source
    (checkpoint,) = sorted((run / "checkpoints").iterdir())
    trained = load_file(str(checkpoint / "bundle.safetensors"))
    shipped = load_file(str(student / "2_Dense" / "model.safetensors"))
    torch.testing.assert_close(shipped["linear.weight"], trained[f"{key}.weight"])
    assert open_torch(student).encode(SENTENCES[:3]).shape == (3, 32)


@pytest.mark.parametrize(("method", "extra"), [("mha", NARROW), ("hs", [])])
def test_no_dense_without_a_projection_onto_the_top_layer(
    method: str, extra: list[str], tiny_bert_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    """MHA learns no projection; a student as wide as its teacher needs none."""
    student = distill(tiny_bert_dir, corpus, tmp_path / "run", "--method", method, *extra)
    assert not (student / "2_Dense").exists()
    assert "sentence_dense" not in json.loads((student / "studentpack.json").read_text())
    width = 16 if extra else 32
    assert open_torch(student).encode(SENTENCES[:2]).shape == (2, width)


def test_the_onnx_graph_and_the_server_backend_carry_the_dense(emb_student: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from studentpack.export import onnx as export_onnx
    from studentpack.serving.backends import TorchBackend
    from studentpack.text.sources import read_model_config

    tokenizer = adapter.load_tokenizer(emb_student)
    info = export_onnx.describe(read_model_config(emb_student), tokenizer, emb_student)
    assert (info.hidden_size, info.sentence_width) == (16, 32)
    path = tmp_path / "model.onnx"
    export_onnx.export_fp32(export_onnx.load_graph_module(emb_student, info), info, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {o.name: o.shape for o in session.get_outputs()}
    assert declared["sentence_embedding"][1] == 32 and declared["token_embeddings"][2] == 16
    feeds = {k: v.numpy() for k, v in tokenizer(SENTENCES[:4], padding=True, return_tensors="pt").items()}
    graph = session.run(["sentence_embedding"], feeds)[0]
    np.testing.assert_allclose(graph, by_hand(emb_student, SENTENCES[:4]), atol=1e-5)
    backend = TorchBackend(emb_student, "cpu", 64, 1)
    assert backend.info.dim == 32
    rows = backend.run(backend.tokenize(SENTENCES[:4]).ids, [None] * 4)
    np.testing.assert_allclose(rows, graph, atol=1e-5)


def test_the_server_graph_backend_carries_the_dense(emb_student: Path, tmp_path: Path) -> None:
    """An exported variant served as a graph (not the PyTorch baseline) answers in the Dense's width."""
    from studentpack.serving.backends import load_backend
    from tests.test_serve_e2e import export_variant

    variant = export_variant(emb_student, tmp_path / "onnx")
    backend = load_backend(variant, "cpu", 64, 1)
    assert type(backend).__name__ == "GraphBackend" and backend.info.dim == 32
    rows = backend.run(backend.tokenize(SENTENCES[:4]).ids, [None] * 4)
    np.testing.assert_allclose(rows, by_hand(emb_student, SENTENCES[:4]), atol=1e-5)


def test_sentence_transformers_reads_the_student_alike(emb_student: Path) -> None:
    import sentence_transformers as st  # a test dependency ([dev]): this comparison must never skip

    model = st.SentenceTransformer(str(emb_student), device="cpu")
    theirs = model.encode(SENTENCES[:4], convert_to_numpy=True)
    np.testing.assert_allclose(theirs, open_torch(emb_student).encode(SENTENCES[:4]), atol=1e-5)


def _with_dense(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    save_dense(model, torch.nn.Linear(32, 8))
    return model


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        ("activation", "is not supported"),
        ("escape", "leaves the model directory"),
        ("shape", "expected (D, 32)"),
        ("pickle", "has no model.safetensors"),
    ],
)
def test_a_bad_dense_is_a_clear_error(damage: str, fragment: str, tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = _with_dense(tiny_bert_dir, tmp_path)
    config_file = model / "2_Dense" / "config.json"
    if damage == "activation":
        config = json.loads(config_file.read_text())
        config["activation_function"] = "os.system"
        config_file.write_text(json.dumps(config))
    elif damage == "escape":
        modules = json.loads((model / "modules.json").read_text())
        modules[2]["path"] = "../../elsewhere"
        (model / "modules.json").write_text(json.dumps(modules))
    elif damage == "shape":
        save_dense(model, torch.nn.Linear(24, 8))
    elif damage == "pickle":
        (model / "2_Dense" / "model.safetensors").rename(model / "2_Dense" / "pytorch_model.bin")
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        open_torch(model)


def test_a_tanh_dense_from_sentence_transformers_is_applied(tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = _with_dense(tiny_bert_dir, tmp_path)
    config_file = model / "2_Dense" / "config.json"
    config = json.loads(config_file.read_text())
    config["activation_function"] = "torch.nn.modules.activation.Tanh"
    config_file.write_text(json.dumps(config))
    head = load_sentence_head(model, 32)
    states, mask = torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.long)
    assert head.dense is not None
    expected = l2_normalize(torch.tanh(head.dense(states.mean(dim=1))))
    torch.testing.assert_close(head(states, mask), expected)
