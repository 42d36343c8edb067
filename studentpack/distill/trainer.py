"""The distillation loop on `accelerate`: one process here, or many under `accelerate launch`/`torchrun`.

Each step: a deterministic batch (data.BatchPlan), optional MLM masking, one teacher forward without
autograd, the student's forward and backward through the weighted sum of named loss terms, clipping,
AdamW with a step-function LR schedule. Checkpoints are atomic and restore the run exactly; once the
student is saved they are deleted (keep_final_checkpoint keeps the last one).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from studentpack.distill import checkpoint, head_fit
from studentpack.distill.bundle import (
    StudentBundle,
    TeacherRunner,
    build_transfers,
    merged_request,
    sentence_projection,
    term_weight,
)
from studentpack.distill.data import BatchPlan, Chunks, collate_rows, collate_types, mask_tokens, tokenize_corpus
from studentpack.distill.manifest import write_student
from studentpack.distill.plan import RunPlan
from studentpack.distill.rundir import RunDir, retire_checkpoints, truncate_log
from studentpack.distill.schedule import lr_factor
from studentpack.distill.teacher_cache import TeacherCache, plan_cache
from studentpack.ground.cuda import require_torch_cuda
from studentpack.ground.provenance import hash_directory
from studentpack.model import adapter
from studentpack.model.mlm_head import MLMHead
from studentpack.model.student import build_student
from studentpack.text.corpus import training_texts


@dataclass
class Counters:
    """Totals that survive resumes (kept in each checkpoint's state.json)."""

    tokens: int = 0
    train_seconds: float = 0.0
    last_terms: dict[str, float] = field(default_factory=dict)


def make_accelerator(device: str, precision: str) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    require_torch_cuda(device, "--device")
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    # MHA leaves the student's last FFN without gradient, and the pooler is frozen
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(cpu=cpu, mixed_precision=precision, kwargs_handlers=[ddp])


class Distiller:
    def __init__(
        self, plan: RunPlan, run: RunDir, progress: bool = True, cpu_tuning: dict[str, bool] | None = None
    ) -> None:
        self.plan = plan
        self.cfg = plan.config
        self.run_dir = run
        self.progress = progress
        self.cpu_tuning = cpu_tuning or {}
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.acc = make_accelerator(self.cfg.device, self.cfg.precision)
        self.needs_mlm = "od" in self.cfg.methods()

    # ---- setup -------------------------------------------------------------------------------
    def _load(self) -> None:
        plan, cfg = self.plan, self.cfg
        self.tokenizer = adapter.load_tokenizer(plan.teacher.path)
        teacher = adapter.load_encoder(plan.teacher.path, cfg.allow_pickle, role="teacher")
        texts = training_texts(plan.corpus.texts, cfg.split_sentences, cfg.pairs)
        self.chunks: Chunks = tokenize_corpus(
            texts, self.tokenizer, cfg.max_length, pack=cfg.pack, isolate=cfg.isolate_lines, pairs=cfg.pairs
        )
        if int(getattr(teacher.config, "type_vocab_size", 0) or 0) < 2:  # e.g. RoBERTa: one type, none to pass
            self.chunks = replace(self.chunks, types=None)
        if not self.chunks.sequences:
            from studentpack.ground.errors import UserError

            raise UserError("the corpus yields no token sequences of at least 4 tokens")
        torch.manual_seed(cfg.seed)  # identical student initialisation on every rank
        init_layers = plan.init_map.init_layers() if plan.init_map else []
        student, self.init_record = build_student(teacher, plan.shape, init_layers)
        adapter.set_dropout(student, cfg.dropout)
        transfers = build_transfers(plan)
        teacher_head, student_head, self.head_record = self._heads(teacher, student)
        self.bundle = StudentBundle(student, transfers, student_head)
        teacher_request = merged_request([t.teacher_request() for t in transfers.values()])
        keep = plan.teacher_layers if self.needs_mlm else teacher_request.deepest_layer()
        self.teacher = TeacherRunner(teacher, teacher_head, teacher_request, keep).to(self.acc.device)
        self.transfers_described = {name: t.describe() for name, t in transfers.items()}
        rows_seen = cfg.steps * cfg.batch_size * self.acc.num_processes
        width = int(plan.teacher_config["hidden_size"])
        self.cache_plan = plan_cache(teacher_request, width, self.chunks, rows_seen, cfg.teacher_cache_mb,
                                     masked_inputs=self.needs_mlm)  # fmt: skip
        self.cache: TeacherCache | None = None

    def _fill_cache(self) -> None:
        """The teacher over every row once (same batches on every start, so a resumed run matches)."""
        if not self.cache_plan.use:
            return
        bar = tqdm(total=len(self.chunks.sequences), desc="teacher features", unit="row", dynamic_ncols=True,
                   disable=not (self.progress and self.acc.is_main_process))  # fmt: skip
        self.cache = TeacherCache.build(self.teacher, self.chunks, self.tokenizer.pad_token_id, self.acc.device,
                                        progress=bar.update)  # fmt: skip
        bar.close()

    def _heads(self, teacher: Any, student: Any) -> tuple[MLMHead | None, MLMHead | None, dict[str, Any] | None]:
        if not self.needs_mlm:
            return None, None, None
        cfg = self.cfg
        head = head_fit.checkpoint_head(self.plan.teacher.path, teacher)
        record: dict[str, Any] = {"source": "checkpoint"}
        if head is None:
            key = {
                "teacher": hash_directory(self.plan.teacher.path),
                "corpus": self.plan.corpus.sha256,
                "settings": f"{cfg.fit_head_steps}/{cfg.fit_head_lr}/{cfg.batch_size}/{cfg.max_length}/{cfg.seed}",
            }

            def fit() -> tuple[MLMHead, dict[str, Any]]:
                fitted, fit_record = head_fit.fit_head(
                    teacher, self.tokenizer, self.chunks, cfg.fit_head_steps, cfg.fit_head_lr, cfg.batch_size,
                    cfg.mask_prob, cfg.seed, self.acc.device, self.progress and self.acc.is_main_process,
                )  # fmt: skip
                self._note_head_fit(fit_record)
                return fitted, fit_record

            # the main process fits (or finds) the head and caches it; the other ranks wait and load that
            # cache, so a run on N processes fits one head, not N different ones
            if self.acc.is_main_process:
                head, record = head_fit.cached_or_fitted_head(self.run_dir.path, key, head_fit.new_head_like(teacher),
                                                              fit, is_main=True)  # fmt: skip
            self.acc.wait_for_everyone()
            if not self.acc.is_main_process:
                head, record = head_fit.cached_or_fitted_head(
                    self.run_dir.path, key, head_fit.new_head_like(teacher), _no_second_fit, is_main=False
                )
        assert head is not None
        student_head = head_fit.new_head_like(student)
        if student.config.hidden_size == teacher.config.hidden_size:
            student_head.load_state_dict(head.state_dict())
            record = {**record, "student_head_init": "teacher head"}
        else:
            record = {**record, "student_head_init": "random (widths differ)"}
        torch.manual_seed(self.cfg.seed)
        return head, student_head, record

    def _note_head_fit(self, record: dict[str, Any]) -> None:
        """One stderr line per fit: it costs time, its loss says how good the OD targets are, and the
        process that fitted it is named (a run on N processes fits on the main one only)."""
        acc = self.acc
        where = f" on process {acc.process_index} of {acc.num_processes}" if acc.num_processes > 1 else ""
        print(
            f"studentpack distill: note: fitted an MLM head for the headless teacher{where}: {record['steps']} "
            f"steps, MLM loss {record['mlm_loss_before']:.3f} -> {record['mlm_loss_after']:.3f}",
            file=sys.stderr,
        )

    def _optimizer(self) -> torch.optim.Optimizer:
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, param in self.bundle.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # the fused kernel is ~6x faster than the foreach one on CPU (the 12M-entry embedding matrix dominates)
        return torch.optim.AdamW(groups, lr=self.cfg.lr, fused=True)

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, resume: bool) -> Path:
        wall_start = time.perf_counter()
        self._load()
        optimizer = self._optimizer()
        self.bundle, optimizer = self.acc.prepare(self.bundle, optimizer)
        counters, start = Counters(), 0
        if resume:
            found = checkpoint.latest_checkpoint(self.run_dir.path)
            assert found is not None
            state = checkpoint.load(self.acc, found[1], self.bundle, optimizer)
            start = state["step"]
            counters = Counters(state["tokens"], state["train_seconds"], state.get("last_terms", {}))
            if self.acc.is_main_process:
                truncate_log(self.run_dir, start)
        else:
            torch.manual_seed(self.cfg.seed + 1000 * self.acc.process_index)  # dropout streams per rank
        self._fill_cache()
        self._train(optimizer, start, counters)
        return self._finish(counters, time.perf_counter() - wall_start)

    def _batch(
        self, indices: list[int], step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(B, T) ids, attention mask, line numbers (None unless isolated) and token types (None unless pairs),
        and the MLM positions and labels."""
        rank = self.acc.process_index
        ids, mask, segments = collate_rows(self.chunks, indices, self.tokenizer.pad_token_id)
        if self.needs_mlm:
            gen = torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step) * 997 + rank)
            masked = mask_tokens(
                ids, mask, self.tokenizer.all_special_ids, self.tokenizer.mask_token_id, len(self.tokenizer),
                self.cfg.mask_prob, gen,
            )  # fmt: skip
            ids, positions, labels = masked.input_ids, masked.positions, masked.labels
        else:
            positions = labels = torch.zeros(0, dtype=torch.long)
        device = self.acc.device
        lines = segments.to(device) if segments is not None else None
        types = collate_types(self.chunks, indices)
        types = types.to(device) if types is not None else None
        return ids.to(device), mask.to(device), lines, types, positions.to(device), labels.to(device)

    def _step(self, optimizer: Any, plan: BatchPlan, step: int) -> tuple[dict[str, float], int]:
        cfg = self.cfg
        indices = plan.indices(step, self.acc.process_index)
        ids, mask, lines, types, positions, labels = self._batch(indices, step)
        if self.cache is not None:
            teacher = self.cache.features(indices, mask, lines, types)
        else:
            teacher = self.teacher(ids, mask, positions, labels, lines, types)
        with self.acc.autocast():
            terms = self.bundle(ids, mask, positions, teacher)
            loss = sum(term_weight(self.plan, name) * value for name, value in terms.items())
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.steps, int(cfg.warmup * cfg.steps), cfg.schedule)
        self.acc.backward(loss)
        if cfg.clip > 0:
            self.acc.clip_grad_norm_(self.bundle.parameters(), cfg.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        values = {name: float(v.detach()) for name, v in terms.items()}
        values["loss"] = float(loss.detach())
        return values, int(mask.sum())

    def _train(self, optimizer: Any, start: int, counters: Counters) -> None:
        cfg, acc = self.cfg, self.acc
        plan = BatchPlan(len(self.chunks.sequences), cfg.batch_size, acc.num_processes, cfg.seed)
        bar = tqdm(
            total=cfg.steps, initial=start, desc=f"distill {cfg.method}", unit="step",
            disable=not (self.progress and acc.is_main_process), dynamic_ncols=True,
        )  # fmt: skip
        window_tokens, window_start = 0, time.perf_counter()
        self.bundle.train()
        for step in range(start, cfg.steps):
            step_start = time.perf_counter()
            values, tokens = self._step(optimizer, plan, step)
            done = step + 1
            counters.train_seconds += time.perf_counter() - step_start
            window_tokens += tokens
            counters.last_terms = values
            if done % cfg.log_every == 0 or done == cfg.steps:
                values = self._mean_over_ranks(values)  # the global batch's loss, not rank 0's share
                counters.last_terms = values
                total_window = self._sum_over_ranks(window_tokens)
                counters.tokens += total_window
                rate = total_window / max(1e-9, time.perf_counter() - window_start)
                self._log(done, values, optimizer, counters, rate, plan)
                bar.set_postfix_str(_postfix(values, rate), refresh=False)
                window_tokens, window_start = 0, time.perf_counter()
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                if window_tokens:  # a checkpoint between log lines: count the open window's tokens now
                    counters.tokens += self._sum_over_ranks(window_tokens)
                    window_tokens, window_start = 0, time.perf_counter()
                state = {"tokens": counters.tokens, "train_seconds": counters.train_seconds, "last_terms": values}
                checkpoint.save(acc, self.run_dir.path, done, self.bundle, optimizer, state, cfg.keep_checkpoints)
            if cfg.snapshot_every and done % cfg.snapshot_every == 0 and done < cfg.steps:
                self._snapshot(done, counters)
        bar.close()

    def _snapshot(self, step: int, counters: Counters) -> None:
        """The student as it is now, a loadable directory under snapshots/ (for learning curves)."""
        if self.acc.is_main_process:
            student = self.acc.unwrap_model(self.bundle).encoder
            extra = {"snapshot_step": step, "tokens_seen": counters.tokens, "init": self.init_record}
            write_student(
                self.run_dir.path / "snapshots" / f"step-{step:07d}", student, self.tokenizer, self.plan, extra
            )
        self.acc.wait_for_everyone()

    def _mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        if self.acc.num_processes == 1:
            return values
        names = sorted(values)
        stacked = torch.tensor([values[n] for n in names], dtype=torch.float64, device=self.acc.device)
        mean = self.acc.reduce(stacked, reduction="mean")
        return {name: float(v) for name, v in zip(names, mean.tolist(), strict=True)}

    def _sum_over_ranks(self, value: int) -> int:
        if self.acc.num_processes == 1:
            return value
        total = self.acc.reduce(torch.tensor([value], device=self.acc.device), reduction="sum")
        return int(total.item())

    def _log(self, step: int, values: dict[str, float], optimizer: Any, counters: Counters, rate: float,
             plan: BatchPlan) -> None:  # fmt: skip
        if not self.acc.is_main_process:
            return
        record = {
            "step": step,
            "epoch": round(plan.epoch_of(step), 4),
            "lr": optimizer.param_groups[0]["lr"],
            "loss": values["loss"],
            "terms": {k: v for k, v in values.items() if k != "loss"},
            "tokens": counters.tokens,
            "tokens_per_s": round(rate, 1),
            "train_seconds": round(counters.train_seconds, 3),
        }
        self.run_dir.path.mkdir(parents=True, exist_ok=True)
        with self.run_dir.log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    # ---- the end -----------------------------------------------------------------------------
    def _finish(self, counters: Counters, wall_seconds: float) -> Path:
        from accelerate.utils import gather_object

        bundle = self.acc.unwrap_model(self.bundle)
        student = bundle.encoder
        digests = gather_object([parameter_digest(student)])
        if self.acc.is_main_process:
            if len(set(digests)) != 1:
                raise RuntimeError(f"ranks ended with different student weights: {digests}")
            write_student(
                self.run_dir.student, student, self.tokenizer, self.plan,
                manifest_extra={
                    "init": self.init_record,
                    "teacher_head": self.head_record,
                    "transfers": self.transfers_described,
                    "corpus_tokens": {"chunks": len(self.chunks.sequences), "tokens": self.chunks.tokens},
                    "world_size": self.acc.num_processes,
                    "cpu_tuning": self.cpu_tuning,
                    "teacher_cache": self.cache_plan.describe(),
                    "rank_weight_digests": digests,
                    "final_terms": counters.last_terms,
                    "tokens_seen": counters.tokens,
                    "train_seconds": round(counters.train_seconds, 3),
                    "wall_seconds_this_process": round(wall_seconds, 3),
                    "tokens_per_s": round(counters.tokens / max(1e-9, counters.train_seconds), 1),
                },
                dense=sentence_projection(bundle.transfers, self.plan),
            )  # fmt: skip
            # only now, with the student complete under its final name, are the checkpoints spare
            retire_checkpoints(self.run_dir, self.cfg.keep_final_checkpoint)
        self.acc.wait_for_everyone()
        return self.run_dir.student


def _no_second_fit() -> tuple[MLMHead, dict[str, Any]]:
    raise RuntimeError("the main process did not leave a fitted teacher head for the other ranks")


def parameter_digest(model: torch.nn.Module) -> str:
    """sha256 over every parameter's bytes, in name order: equal digests mean identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _postfix(values: dict[str, float], rate: float) -> str:
    terms = " ".join(f"{k}={v:.4f}" for k, v in values.items())
    return f"{terms} | {rate:,.0f} tok/s"
