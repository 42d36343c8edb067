"""The teacher cache: the features it serves are the teacher's own, and a cached run trains the same student."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from studentpack.cli import main
from studentpack.distill.config import DistillConfig
from studentpack.distill.data import BatchPlan
from studentpack.distill.plan import make_plan
from studentpack.distill.rundir import RunDir
from studentpack.distill.teacher_cache import TeacherCache
from studentpack.distill.trainer import Distiller
from studentpack.model.student import StudentSpec


def _distiller(teacher: Path, corpus: Path, tmp_path: Path, **settings: object) -> Distiller:
    settings = {"max_length": 32, "batch_size": 3, "steps": 40, "student": StudentSpec(layers=2), "threads": 1,
                **settings}  # fmt: skip
    config = DistillConfig(teacher=str(teacher), corpus=(str(corpus),), **settings)  # type: ignore[arg-type]
    distiller = Distiller(make_plan(config), RunDir(tmp_path / "run"), progress=False)
    distiller._load()
    return distiller


@pytest.mark.parametrize(
    ("method", "isolate", "pairs"),
    [("hs", True, False), ("hs", False, False), ("mha", True, False), ("emb+hs+mha", True, False),
     ("hs+mha", True, True)],
)  # fmt: skip
def test_cached_features_are_the_teachers_for_any_batch(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path, method: str, isolate: bool, pairs: bool
) -> None:
    if pairs:  # cross-encoder inputs: each row's two sentences, the second of token type 1
        lines = corpus.read_text().splitlines()
        corpus = tmp_path / "pairs.tsv"
        corpus.write_text("sentence1\tsentence2\n" + "".join(f"{a}\t{b}\n" for a, b in itertools.pairwise(lines)))
    distiller = _distiller(tiny_bert_dir, corpus, tmp_path, method=method, isolate_lines=isolate, pairs=pairs)
    assert (distiller.chunks.types is not None) is pairs
    assert distiller.cache_plan.use, distiller.cache_plan
    cache = TeacherCache.build(distiller.teacher, distiller.chunks, distiller.tokenizer.pad_token_id,
                               torch.device("cpu"))  # fmt: skip
    plan = BatchPlan(len(distiller.chunks.sequences), 3, 1, seed=0)
    for step in (0, 7, 19):  # rows meet other rows, and other padding, than when the cache was filled
        indices = plan.indices(step, 0)
        ids, mask, lines, types, positions, labels = distiller._batch(indices, step)
        want = distiller.teacher(ids, mask, positions, labels, lines, types)
        got = cache.features(indices, mask, lines, types)
        assert want.hidden.keys() == got.hidden.keys() and want.qkv.keys() == got.qkv.keys()
        real = mask.bool()[..., None]  # (B, T, 1): padding is zero in the cache and never read
        for layer in want.hidden:
            torch.testing.assert_close(got.hidden[layer] * real, want.hidden[layer] * real, atol=1e-5, rtol=1e-5)
        for layer in want.qkv:
            for a, b in zip(got.qkv[layer], want.qkv[layer], strict=True):
                torch.testing.assert_close(a * real, b * real, atol=1e-5, rtol=1e-5)
        assert got.segments is lines and got.attention_mask is mask and got.token_types is types


def test_no_cache_with_od_masking_few_epochs_or_no_room(tiny_bert_dir: Path, corpus: Path, tmp_path: Path) -> None:
    assert "masks" in _distiller(tiny_bert_dir, corpus, tmp_path, method="od").cache_plan.reason
    assert "seen" in _distiller(tiny_bert_dir, corpus, tmp_path, method="hs", steps=1).cache_plan.reason
    off = _distiller(tiny_bert_dir, corpus, tmp_path, method="hs", teacher_cache_mb=0)
    assert "turned off" in off.cache_plan.reason


def test_a_cached_run_trains_the_student_an_uncached_run_trains(
    tiny_bert_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    base = ["distill", "--teacher", str(tiny_bert_dir), "--corpus", str(corpus), "--method", "hs+mha",
            "--student-layers", "2", "--steps", "12", "--batch-size", "3", "--max-length", "32", "--threads", "1",
            "--quiet"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "cached")]) == 0
    assert main([*base, "--out", str(tmp_path / "plain"), "--teacher-cache-mb", "0"]) == 0
    manifests = [json.loads((tmp_path / r / "student" / "studentpack.json").read_text()) for r in ("cached", "plain")]
    assert manifests[0]["teacher_cache"]["used"] and not manifests[1]["teacher_cache"]["used"]
    cached = load_file(str(tmp_path / "cached" / "student" / "model.safetensors"))
    plain = load_file(str(tmp_path / "plain" / "student" / "model.safetensors"))
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], atol=1e-4, rtol=1e-4)
