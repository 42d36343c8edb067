"""EvalConfig: everything one evaluation needs, as a frozen dataclass (CLI flags, a config file or code)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studentpack.ground.errors import UserError

Task = Literal["stsb", "sst2", "agreement"]

# task -> its modes, the first being the default for an embedding model; `predict` scores a classifier
MODES: dict[str, tuple[str, ...]] = {
    "stsb": ("zeroshot", "finetune", "predict", "biencoder"),
    "sst2": ("probe", "finetune", "predict"),
    "agreement": ("zeroshot",),
}
# modes that train on the train split and save the trained model: cross-encoder/classifier, bi-encoder
TRAINING_MODES = ("finetune", "biencoder")
DEFAULT_DATA = {"stsb": "hub:glue/stsb", "sst2": "hub:glue/sst2"}
DEFAULT_PROBE_TRAIN = 10_000  # probe train rows unless --train-limit says otherwise
DEFAULT_AGREEMENT_TEXTS = 1_000
# what `--teacher` must be for --mode finetune, said when it is not
SOFT_TEACHER = "--mode finetune distils from a fine-tuned classifier of the same task (`eval --mode finetune`'s output)"
MAX_PAIRWISE_TEXTS = 2_000  # agreement ranks pairs of at most this many texts (N^2 / 2 similarities)


@dataclass(frozen=True)
class EvalConfig:
    model: str
    task: Task
    mode: str | None = None  # None: the task's default for the kind of model given
    data: str | None = None  # file, directory with train.*/dev.*, or hub:NAME[:CONFIG]
    train: str | None = None  # train split when `data` is a single file
    split: str | None = None  # eval split name inside a data directory or hub dataset
    text_column: str | None = None
    pair_column: str | None = None
    label_column: str | None = None
    limit: int | None = None  # score only the first N eval examples
    train_limit: int | None = None  # seeded random subset of train rows (probe default 10000; finetune: all)
    # agreement: the reference (default from the student's studentpack.json, else the packaged one);
    # finetune: a fine-tuned classifier of the same task whose outputs become soft targets
    teacher: str | None = None
    max_length: int = 128
    batch_size: int = 32
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    probe_c: float = 1.0  # inverse L2 strength of the logistic-regression probe (standardised features)
    epochs: int = 1
    lr: float = 5e-5
    train_batch_size: int = 32
    warmup: float = 0.1  # fraction of fine-tuning steps with linear warm-up
    weight_decay: float = 0.01
    soft_weight: float = 0.5  # finetune with a teacher: share of the loss on its soft targets
    temperature: float = 2.0  # finetune with a classifier teacher: softmax temperature of both sides
    out: str | None = None  # eval.json path or directory; for finetune: the fine-tuned model directory
    save: bool = True
    overwrite: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise UserError("give a MODEL (a model directory, an ONNX variant directory or a URL)")
        if self.task not in MODES:
            raise UserError(f"unknown task {self.task!r} (choose from {', '.join(MODES)})")
        if self.mode is not None and self.mode not in MODES[self.task]:
            raise UserError(f"task {self.task} has no mode {self.mode!r} (modes: {', '.join(MODES[self.task])})")
        for name in ("limit", "train_limit", "max_length", "batch_size", "threads", "epochs", "train_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("lr", "probe_c", "temperature"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.warmup < 1:
            raise UserError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must not be negative, got {self.weight_decay}")
        if not 0 <= self.soft_weight <= 1:
            raise UserError(f"--soft-weight is a share of the loss in [0, 1], got {self.soft_weight}")
        if self.teacher and self.task != "agreement" and self.mode != "finetune":
            raise UserError("--teacher applies to --task agreement and to --mode finetune (soft targets)")
        if self.task == "agreement" and (self.train or self.train_limit):
            raise UserError("agreement needs no train split (--train, --train-limit)")
        if self.mode in TRAINING_MODES and self.out and self.out.endswith(".json"):
            raise UserError(f"with --mode {self.mode}, --out names the directory of the fine-tuned model")

    @property
    def data_spec(self) -> str | None:
        return self.data if self.data is not None else DEFAULT_DATA.get(self.task)
