"""An MLM head for the teacher, so OD transfer works with headless teachers (sentence-embedding models).

If the teacher checkpoint carries a pretrained MLM head (BertForMaskedLM, RobertaForMaskedLM), it is
used as is. Otherwise a head is fitted on the frozen teacher's final states by masked-token
cross-entropy, and cached in the run directory keyed by the teacher and corpus hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from studentpack.distill.data import BatchPlan, Chunks, collate_rows, collate_types, mask_tokens
from studentpack.ground import atomic
from studentpack.model import adapter
from studentpack.model.mlm_head import MLMHead
from studentpack.text.segments import encoder_inputs

CACHE = "teacher_head"


def new_head_like(encoder: Any) -> MLMHead:
    """A head whose decoder starts from the encoder's word embeddings (the tied layout of BERT)."""
    config = encoder.config
    head = MLMHead(config.hidden_size, config.vocab_size, config.layer_norm_eps)
    with torch.no_grad():
        head.decoder.weight.copy_(adapter.word_embeddings(encoder).weight)
        head.decoder.bias.zero_()
    return head


def checkpoint_head(teacher_path: Path, encoder: Any) -> MLMHead | None:
    weights = adapter.mlm_head_weights(teacher_path, encoder.config.model_type)
    if weights is None:
        return None
    head = new_head_like(encoder)
    head.load_state_dict({**weights, "decoder.weight": head.decoder.weight.detach().clone()})
    return head


def mlm_loss(
    encoder: Any,
    head: MLMHead,
    chunks: Chunks,
    indices: list[int],
    tokenizer: Any,
    gen: torch.Generator,
    mask_prob: float,
    device: torch.device,
) -> torch.Tensor:
    ids, mask, segments = collate_rows(chunks, indices, tokenizer.pad_token_id)
    batch = mask_tokens(ids, mask, tokenizer.all_special_ids, tokenizer.mask_token_id, len(tokenizer), mask_prob, gen)
    inputs = {"attention_mask": mask} if segments is None else encoder_inputs(encoder, segments)
    types = collate_types(chunks, indices)
    if types is not None:
        inputs["token_type_ids"] = types
    with torch.no_grad():
        states = encoder(
            input_ids=batch.input_ids.to(device), **{k: v.to(device) for k, v in inputs.items()}
        ).last_hidden_state
    logits = head(states.flatten(0, 1)[batch.positions.to(device)])  # (M, V)
    return F.cross_entropy(logits, batch.labels.to(device))


def fit_head(
    encoder: Any,
    tokenizer: Any,
    chunks: Chunks,
    steps: int,
    lr: float,
    batch_size: int,
    mask_prob: float,
    seed: int,
    device: torch.device,
    progress: bool,
) -> tuple[MLMHead, dict[str, Any]]:
    """Train a head on the frozen encoder; returns it with the MLM loss before and after."""
    torch.manual_seed(seed)
    head = new_head_like(encoder).to(device)
    encoder.to(device).eval()  # the trainer places the teacher only after its head exists
    held_out, train_ids = split_held_out(len(chunks.sequences), batch_size, seed)
    plan = BatchPlan(len(train_ids), batch_size, 1, seed + 17)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    eval_indices = held_out or train_ids[:batch_size]  # a corpus too small to spare chunks: say so below

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(
                mlm_loss(
                    encoder,
                    head,
                    chunks,
                    eval_indices,
                    tokenizer,
                    torch.Generator().manual_seed(seed),
                    mask_prob,
                    device,
                )
            )

    before = held_out_loss()
    bar = tqdm(range(1, steps + 1), desc="fit teacher MLM head", disable=not progress, unit="step")
    for step in bar:
        gen = torch.Generator().manual_seed(seed * 7919 + step)
        batch = [train_ids[i] for i in plan.indices(step, 0)]
        loss = mlm_loss(encoder, head, chunks, batch, tokenizer, gen, mask_prob, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            bar.set_postfix(mlm=f"{loss.item():.3f}")
    after = held_out_loss()
    return head.cpu(), {
        "source": "fitted",
        "steps": steps,
        "lr": lr,
        "mlm_loss_before": before,
        "mlm_loss_after": after,
        "held_out_chunks": len(held_out),  # 0: the losses were measured on training chunks
    }


def split_held_out(n_chunks: int, batch_size: int, seed: int) -> tuple[list[int], list[int]]:
    """(held-out chunk ids, training chunk ids): a seeded batch kept out of training when the corpus has
    at least ten times as many chunks, so the head's loss after fitting is measured on unseen text."""
    if n_chunks < 10 * batch_size:
        return [], list(range(n_chunks))
    order = torch.randperm(n_chunks, generator=torch.Generator().manual_seed(seed + 29)).tolist()
    held = sorted(order[:batch_size])
    kept = set(held)
    return held, [i for i in range(n_chunks) if i not in kept]


def cached_or_fitted_head(
    run_dir: Path,
    key: dict[str, str],
    empty_head: MLMHead,
    fit: Callable[[], tuple[MLMHead, dict[str, Any]]],
    is_main: bool,
) -> tuple[MLMHead, dict[str, Any]]:
    """Load the cached head when its key (teacher hash, corpus hash, settings) matches; else fit and cache it."""
    cache = run_dir / CACHE
    meta_path = cache / "head.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            empty_head.load_state_dict(load_file(str(cache / "head.safetensors")))
            return empty_head, {**meta["record"], "cached": True}
    head, record = fit()
    if is_main:
        with atomic.atomic_dir(cache, overwrite=True) as tmp:
            save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp / "head.safetensors"))
            atomic.write_json(tmp / "head.json", {"key": key, "record": record})
    return head, {**record, "cached": False}
