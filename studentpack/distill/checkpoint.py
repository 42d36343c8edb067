"""Atomic checkpoints: a step's directory appears under its final name only when complete.

Contents: bundle.safetensors (student + learned projections + heads), optimizer.pt, one rng-<rank>.pt
per process, scaler.pt under fp16 (the loss scale and its growth tracker), state.json (step and
counters). The LR schedule is a pure function of the step, and the data position is the step (see
data.BatchPlan), so these restore a run exactly. Accelerate's save_state would write the same state,
but as several pickles and not atomically; this keeps one directory that appears whole or not at all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from studentpack.ground import atomic

ROOT = "checkpoints"
_NAME = re.compile(r"^step-(\d{8})$")


def _name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = run_dir / ROOT
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    accelerator: Any, run_dir: Path, step: int, bundle: torch.nn.Module, optimizer: Any, state: dict, keep: int
) -> None:
    """Called on every rank; rank 0 writes the shared files and renames the directory into place."""
    root = run_dir / ROOT
    tmp = root / f".{_name(step)}{atomic.TMP_MARK}"
    if accelerator.is_main_process:
        atomic.remove_tree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tensors = {k: v.detach().contiguous().cpu() for k, v in accelerator.unwrap_model(bundle).state_dict().items()}
        save_file(tensors, str(tmp / "bundle.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if getattr(accelerator, "scaler", None) is not None:  # fp16: without it a resume restarts the scale
            torch.save(accelerator.scaler.state_dict(), tmp / "scaler.pt")
        atomic.write_json(tmp / "state.json", {**state, "step": step, "world_size": accelerator.num_processes})
        final = root / _name(step)
        atomic.fsync_tree(tmp)  # the files' bytes on disk before the name says the checkpoint is whole
        atomic.remove_tree(final)
        os.replace(tmp, final)
        atomic.fsync_dir(root)
        prune(run_dir, keep)
    accelerator.wait_for_everyone()


def prune(run_dir: Path, keep: int) -> Path | None:
    """Delete all checkpoints but the newest `keep` (keep=0: the whole checkpoints directory); return
    the newest kept one. Each goes to a temporary name first, so a kill mid-delete never leaves a
    half-deleted directory under a checkpoint's name."""
    root = run_dir / ROOT
    if not root.is_dir():
        return None
    if keep < 1:
        _remove_via_temporary(root)
        return None
    found = list_checkpoints(run_dir)
    for _, old in found[:-keep]:
        _remove_via_temporary(old)
    for leftover in root.iterdir():  # temp directories of saves or deletions that were killed
        if atomic.is_temporary(leftover):
            atomic.remove_tree(leftover)
    return found[-1][1] if found else None


def _remove_via_temporary(path: Path) -> None:
    doomed = path.parent / f".{path.name}{atomic.TMP_MARK}removed-{os.getpid()}"
    atomic.remove_tree(doomed)
    os.replace(path, doomed)
    atomic.remove_tree(doomed)


def load(accelerator: Any, path: Path, bundle: torch.nn.Module, optimizer: Any) -> dict:
    """Restore bundle, optimizer and this rank's RNG; return state.json."""
    state = atomic_read_json(path / "state.json")
    if state.get("world_size") != accelerator.num_processes:
        from studentpack.ground.errors import UserError

        raise UserError(
            f"checkpoint {path} was written by {state.get('world_size')} processes; resume with the same number"
        )
    accelerator.unwrap_model(bundle).load_state_dict(load_file(str(path / "bundle.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scaler = getattr(accelerator, "scaler", None)
    if scaler is not None and (path / "scaler.pt").is_file():
        scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=True))
    set_rng_state(torch.load(path / f"rng-{accelerator.process_index}.pt", weights_only=True))
    return state


def atomic_read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))
