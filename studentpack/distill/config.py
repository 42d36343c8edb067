"""Every setting of a distillation run, as one frozen, typed, serialisable record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from studentpack.ground.errors import UserError
from studentpack.model.student import StudentSpec

Method = Literal["od", "hs", "mha", "emb", "hs+mha", "od+mha", "od+hs", "od+hs+mha", "emb+mha", "emb+hs", "emb+hs+mha",
                 "static"]  # fmt: skip
METHODS: tuple[str, ...] = ("mha", "hs", "od", "emb", "hs+mha", "od+mha", "od+hs", "od+hs+mha", "emb+mha", "emb+hs",
                            "emb+hs+mha", "static")  # fmt: skip
# a static student (Model2Vec's table of token vectors, studentpack.distill.static) is no transformer:
# it combines with no transfer
STATIC = "static"


def canonical_method(text: object) -> object:
    """`text` with a combination's parts in the order METHODS spells it ("hs+emb" -> "emb+hs"); anything
    else unchanged, for the config check to reject with the list of choices."""
    if not isinstance(text, str):
        return text
    parts = sorted(part.strip() for part in text.lower().split("+"))
    if STATIC in parts and len(parts) > 1:
        raise UserError(f"--method {text}: static makes a table of token vectors, not a transformer; it combines "
                        "with no other method")  # fmt: skip
    return next((m for m in METHODS if sorted(m.split("+")) == parts), text)


@dataclass(frozen=True)
class DistillConfig:
    teacher: str | None = None  # local dir, hub id, or None for the packaged all-MiniLM-L6-v2
    corpus: tuple[str, ...] = ()  # files, dirs, hub:NAME[:CONFIG]; empty = embedded:english
    # hs: at the quick budget (300 steps) it was the one transfer that improved the copied-layer student
    # on both STS-B and the SST-2 probe; MHA needs far longer runs (benchmarks/distill_study.py, BENCHMARKS.md)
    method: Method = "hs"
    student: StudentSpec = field(default_factory=StudentSpec)
    # which teacher layers initialise the student (when widths match); None = the HS layer map if it
    # covers every student layer, else "uniform-last" (the student's top layer starts as the teacher's:
    # MHA reads it and sentence embeddings pool it; STS-B after 300 MHA steps: 75.7 vs 66.7 from "uniform")
    init_map: str | None = None
    # HS
    layer_map: str = "uniform-last"
    hs_loss: Literal["mse", "cosine"] = "mse"
    hs_embeddings: bool = False
    # MHA
    relation_heads: int | None = None
    teacher_layer: int | None = None
    # OD
    temperature: float = 2.0
    mlm_weight: float = 0.0
    mask_prob: float = 0.15
    fit_head_steps: int = 300
    fit_head_lr: float = 1e-3
    # weights of the methods when combined (hs+mha, ...)
    od_weight: float = 1.0
    hs_weight: float = 1.0
    mha_weight: float = 1.0
    emb_weight: float = 1.0
    # optimisation
    # 150 steps at lr 1e-3 keep what 300 at 6e-4 kept (3-layer HS, two seeds: 98.7% of the teacher's STS-B,
    # 99.5% of its SST-2 probe) in half the time: what the pipeline's budget affords on a 2-core AVX2 CPU
    steps: int = 150
    batch_size: int = 16  # sequences per process per step
    max_length: int = 128
    # join consecutive corpus lines into full max_length sequences (no padding but the last row's)
    pack: bool = True
    # packed lines each keep their own [CLS]/[SEP], positions and attention, as if run alone: the
    # student then learns the inputs it is judged on (single sentences); quick job STS-B 76.3 -> 79.9
    isolate_lines: bool = True
    # cut corpus paragraphs into sentences first (what a sentence embedder is asked to encode):
    # +0.9 STS-B on WikiText-2, level on the embedded corpus (already a line per sentence or two)
    split_sentences: bool = True
    # a table corpus's two text columns read as one input per row (first [SEP] second), never split: the
    # inputs a cross-encoder reads, for a first stage from a fine-tuned cross-encoder teacher
    pairs: bool = False
    lr: float = 1e-3  # with 150 steps; MHA was level with 6e-4 there (79.58 / 78.10 against 79.42 / 78.44)
    warmup: float = 0.1  # fraction of steps
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = 0.01
    clip: float = 1.0
    # dropout inside the student while distilling (the saved config keeps the teacher's values);
    # off by default: the teacher's soft targets regularise, and on a CPU dropout costs ~13% of a step
    dropout: float = 0.0
    seed: int = 0
    # bookkeeping
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    snapshot_every: int = (
        0  # also save the student every N steps under snapshots/ (learning curves); 0: never  # while the run goes on
    )
    keep_final_checkpoint: bool = False  # once the student is saved: delete every checkpoint, or keep the last
    log_every: int = 10
    device: str = "auto"  # auto, cpu, cuda
    precision: Literal["no", "bf16", "fp16"] = "no"
    threads: int | None = None
    allow_pickle: bool = False
    # keep the teacher's features per corpus row after one pass (distill/teacher_cache.py): an HS step on
    # the default corpus ran 1.4x faster; used only without OD masking, over 1.5 epochs, and within this size
    teacher_cache_mb: int = 2048
    # static (Model2Vec's method; the other methods ignore these): PCA width (the teacher's when larger),
    # SIF coefficient over Zipf-estimated token probabilities (Model2Vec's 1e-4; 0: no weighting), and
    # Adam steps training the table on the corpus against the teacher's sentence embeddings (0: plain).
    # Trained by default: on the default corpus, STS-B dev 70.4 plain -> 73.3 after 300 steps at 3e-3 (86.9 ->
    # 90.5% of the teacher; SST-2 probe 92.2 -> 93.1%) for 32 s more on a 2-core CPU; 1000 steps at 1e-3: 73.4
    # (benchmarks/static_student.py)
    static_dim: int = 256
    static_sif: float = 1e-4
    static_steps: int = 300
    static_lr: float = 3e-3
    static_batch_size: int = 256

    def methods(self) -> list[str]:
        return self.method.split("+")
