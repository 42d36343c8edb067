"""The long distillation runs on a lent GPU, in one device call: the study's best transfer (HS, uniform-last, on
sentences packed in isolation) for the 3- and 2-layer students at a budget a CPU session cannot
reach, scored on the shared data.

The device machine has torch, transformers and accelerate but no network, not our teacher package,
and takes at most 64 MiB of carried files and gives back 8 files of 16 MiB. So:

  here:    python benchmarks/gpu_long_distill.py prepare          # -> .carry/ (teacher in fp16, data)
  device:  (the `device` tool's run, carry [".carry"], timeout_s 600; 8 files come back and a student
           takes 2 or 3, so --keep-weights names the ones worth bringing)
           export PYTHONPATH=$PWD PYTHONUNBUFFERED=1; python3 benchmarks/gpu_long_distill.py run \
               --carry .carry --out $OUT --steps 3000 --batch-size 128 --device cuda --precision bf16 \
               --budget-s 540 --keep-weights l2
  here:    python benchmarks/gpu_long_distill.py restore DIR      # DIR: the files that came back
           -> runs/gpu-long/<shape>/student (fp32), scores re-checked here, results committed

The teacher travels in fp16 (45 MB instead of 87 MB) and is widened back to fp32 on the device; bf16
autocast rounds its weights further than that anyway. Students come back as fp16 chunks under 15 MiB
and are widened here. The dry run here: `run --device cpu --precision no --steps 4 --batch-size 4
--curve-points 2 --probe-train 300` (about 3 minutes); tests/test_gpu_long_distill.py checks the splitting.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CHUNK_BYTES = 15 << 20  # under the device's 16 MiB per returned file
TEACHER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
SHAPES = {"l3": ["--student-layers", "3"], "l2": ["--student-layers", "2"]}


def prepare(carry: Path) -> None:
    """The teacher (fp16 weights) and the data files the run needs, into `carry` (ignored by git)."""
    import torch
    from safetensors.torch import load_file, save_file

    from studentpack.text.sources import packaged_teacher_dir

    teacher = packaged_teacher_dir()
    shutil.rmtree(carry, ignore_errors=True)
    (carry / "teacher").mkdir(parents=True)
    for name in TEACHER_FILES:
        if (teacher / name).is_file():
            shutil.copy2(teacher / name, carry / "teacher" / name)
    weights = load_file(str(teacher / "model.safetensors"))
    save_file({k: v.to(torch.float16) for k, v in weights.items()}, str(carry / "teacher" / "fp16.safetensors"))
    data = carry / "data"
    for rel in ("wikitext-2/valid.txt", "wikitext-2/test.txt", "sst2/train.tsv", "sst2/dev.tsv", "stsb/dev.tsv"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SHARED / rel, data / rel)
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    print(f"prepared {carry}: {size / 2**20:.1f} MiB (the device takes 64 MiB with the repository)")


def widen_teacher(carry: Path, dst: Path) -> Path:
    """The carried fp16 teacher as an ordinary fp32 model directory."""
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    for name in TEACHER_FILES:
        if (carry / "teacher" / name).is_file():
            shutil.copy2(carry / "teacher" / name, dst / name)
    weights = load_file(str(carry / "teacher" / "fp16.safetensors"))
    save_file({k: v.to(torch.float32) for k, v in weights.items()}, str(dst / "model.safetensors"))
    return dst


def sst2_text(carry: Path, dst: Path) -> Path:
    header, *lines = (carry / "data" / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    column = header.split("\t").index("sentence")
    dst.write_text("\n".join(line.split("\t")[column] for line in lines if line.strip()) + "\n", encoding="utf-8")
    return dst


def scores(model: Path, carry: Path, device: str, probe_train: int = 10_000) -> dict[str, float]:
    """STS-B dev zero-shot Spearman and the SST-2 dev probe (10,000 train rows), as the study scores them."""
    from studentpack.tasks.options import EvalConfig
    from studentpack.tasks.run import evaluate

    data = carry / "data"
    stsb = evaluate(EvalConfig(model=str(model), task="stsb", data=str(data / "stsb" / "dev.tsv"), device=device,
                               save=False))  # fmt: skip
    sst2 = evaluate(EvalConfig(model=str(model), task="sst2", data=str(data / "sst2"), train_limit=probe_train,
                               device=device, save=False))  # fmt: skip
    values = {"stsb": stsb.result.value, "sst2": sst2.result.value}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise RuntimeError(f"no score for {', '.join(missing)} on {model}")
    return {k: float(v) for k, v in values.items() if v is not None}


def split_student(student: Path, out: Path, shape: str) -> list[str]:
    """The student's weights as fp16 files of at most CHUNK_BYTES (the device returns 16 MiB files);
    a tensor larger than that (the word embeddings) is cut by rows into pieces named NAME@ROW."""
    import torch
    from safetensors.torch import load_file, save_file

    pieces: list[tuple[str, torch.Tensor]] = []
    for name, tensor in load_file(str(student / "model.safetensors")).items():
        half = (tensor.to(torch.float16) if tensor.is_floating_point() else tensor).contiguous()
        row_bytes = max(1, half[0].numel() * half.element_size()) if half.dim() else half.element_size()
        rows = max(1, CHUNK_BYTES // row_bytes)
        if half.dim() and half.numel() * half.element_size() > CHUNK_BYTES:
            pieces += [(f"{name}@{start}", half[start : start + rows].clone()) for start in range(0, len(half), rows)]
        else:
            pieces.append((name, half))
    chunks: list[dict[str, torch.Tensor]] = []
    sizes: list[int] = []
    for name, piece in sorted(pieces, key=lambda p: -p[1].numel() * p[1].element_size()):  # first fit, largest first
        nbytes = piece.numel() * piece.element_size()
        slot = next((i for i, used in enumerate(sizes) if used + nbytes <= CHUNK_BYTES), None)
        if slot is None:
            chunks.append({})
            sizes.append(0)
            slot = len(chunks) - 1
        chunks[slot][name] = piece
        sizes[slot] += nbytes
    names = []
    for i, chunk in enumerate(chunks):
        names.append(f"{shape}-part{i}.safetensors")
        save_file(chunk, str(out / names[-1]))
    return names


def join_pieces(weights: dict[str, Any]) -> dict[str, Any]:
    """Undo split_student's row cuts: NAME@ROW pieces concatenated in row order under NAME."""
    import torch

    whole: dict[str, Any] = {k: v for k, v in weights.items() if "@" not in k}
    cut: dict[str, list[tuple[int, Any]]] = {}
    for key, value in weights.items():
        if "@" in key:
            name, start = key.rsplit("@", 1)
            cut.setdefault(name, []).append((int(start), value))
    for name, parts in cut.items():
        whole[name] = torch.cat([value for _, value in sorted(parts, key=lambda p: p[0])])
    return whole


def distill_within(argv: list[str], limit_s: float | None) -> bool:
    """Run `studentpack distill` in a child process; False when it was stopped at `limit_s` (its snapshots,
    each written whole, stay behind)."""
    try:
        done = subprocess.run([sys.executable, "-m", "studentpack", *argv], timeout=limit_s, check=False)
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:
        raise RuntimeError(f"distill exited {done.returncode}")
    return True


def distill_share(deadline: float | None, shapes_left: int, points: int, score_s: float) -> float | None:
    """Seconds the next distillation may take: what is left before `deadline`, less the scoring still to
    come (`points` scorings per shape), shared equally by the shapes left."""
    if deadline is None:
        return None
    left = deadline - time.monotonic() - shapes_left * points * score_s
    return max(30.0, left / shapes_left)


def run(args: argparse.Namespace) -> None:
    out, work = args.out, args.work
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s if args.budget_s else None
    teacher = widen_teacher(args.carry, work / "teacher")
    corpus = [str(args.carry / "data" / "wikitext-2" / f) for f in ("valid.txt", "test.txt")]
    corpus.append(str(sst2_text(args.carry, work / "sst2-train.txt")))
    summary: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    scored = time.perf_counter()
    summary["teacher"] = scores(teacher, args.carry, args.device, args.probe_train)
    score_s = time.perf_counter() - scored  # the first scoring also starts CUDA: an upper bound for the rest
    print(f"[long] teacher: {summary['teacher']} ({score_s:.0f} s to score)", flush=True)
    shapes = args.shapes.split(",")
    for index, shape in enumerate(shapes):
        run_dir = work / shape
        started = time.perf_counter()
        argv = ["distill", "--teacher", str(teacher), *[x for c in corpus for x in ("--corpus", c)], "--method", "hs",
                "--layer-map", "uniform-last", *SHAPES[shape], "--steps", str(args.steps), "--batch-size",
                str(args.batch_size), "--lr", str(args.lr), "--device", args.device, "--precision", args.precision,
                "--snapshot-every", str(max(1, args.steps // args.curve_points)), *shlex.split(args.recipe),
                "--out", str(run_dir), "--overwrite", "--quiet"]  # fmt: skip
        limit_s = distill_share(deadline, len(shapes) - index, args.curve_points + 1, score_s)
        try:
            finished = distill_within(argv, limit_s)
        except RuntimeError as exc:
            summary["runs"][shape] = {"error": str(exc)}
            continue
        snapshots = sorted((run_dir / "snapshots").glob("step-*"))
        if not finished and not snapshots:
            summary["runs"][shape] = {"error": f"stopped at its {limit_s:.0f} s share before the first snapshot"}
            continue
        # stopped at its share of the budget: the newest snapshot stands in for the final student
        student = run_dir / "student" if finished else snapshots.pop()
        manifest = json.loads((student / "studentpack.json").read_text())
        curve = []
        for snap in snapshots:
            snap_manifest = json.loads((snap / "studentpack.json").read_text())
            curve.append({"step": snap_manifest["snapshot_step"], "tokens": snap_manifest["tokens_seen"],
                          **scores(snap, args.carry, args.device, args.probe_train)})  # fmt: skip
        final = scores(student, args.carry, args.device, args.probe_train)
        steps_done = manifest["steps"] if finished else manifest["snapshot_step"]
        curve.append({"step": steps_done, "tokens": manifest["tokens_seen"], **final})
        summary["runs"][shape] = {
            "finished": finished,
            "steps_done": steps_done,
            "distill_limit_s": limit_s,
            "scores": final,
            "pct_of_teacher": {k: round(100 * v / summary["teacher"][k], 2) for k, v in final.items()},
            "tokens_seen": manifest["tokens_seen"],
            "tokens_per_s": manifest.get("tokens_per_s"),
            "distill_seconds": manifest.get("train_seconds"),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "curve": curve,
        }
        if shape in args.keep_weights.split(","):
            summary["runs"][shape]["files"] = split_student(student, out, shape)
        summary["runs"][shape]["student_files"] = {  # small JSON files ride in the summary: 8 files come back
            name: json.loads((student / name).read_text()) for name in ("config.json", "studentpack.json")
        }
        print(f"[long] {shape}: {summary['runs'][shape]['pct_of_teacher']} after {manifest['tokens_seen']:,} tokens",
              flush=True)  # fmt: skip
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def restore(returned: Path, dest: Path) -> None:
    """Reassemble each returned student (fp16 chunks) into an fp32 model directory under `dest`."""
    import torch
    from safetensors.torch import load_file, save_file

    from studentpack.text.sources import packaged_teacher_dir

    summary = json.loads((returned / "summary.json").read_text())
    for shape, result in summary["runs"].items():
        if "files" not in result:
            continue
        student = dest / shape / "student"
        student.mkdir(parents=True, exist_ok=True)
        weights: dict[str, torch.Tensor] = {}
        for name in result["files"]:
            weights.update(load_file(str(returned / name)))
        save_file({k: v.float() if v.is_floating_point() else v for k, v in join_pieces(weights).items()},
                  str(student / "model.safetensors"))  # fmt: skip
        for name, content in result["student_files"].items():
            (student / name).write_text(json.dumps(content, indent=2) + "\n")
        for name in TEACHER_FILES[1:]:
            if (packaged_teacher_dir() / name).is_file():
                shutil.copy2(packaged_teacher_dir() / name, student / name)
        print(f"restored {student}")
    shutil.copy2(returned / "summary.json", dest / "summary.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--carry", type=Path, default=ROOT / ".carry")
    r = sub.add_parser("run")
    r.add_argument("--carry", type=Path, default=ROOT / ".carry")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu-long"))
    r.add_argument("--steps", type=int, default=3000)  # x 128 x 128 tokens: about 49M tokens per student
    r.add_argument("--batch-size", type=int, default=128)
    r.add_argument("--lr", type=float, default=6e-4)
    r.add_argument("--device", default="cuda")
    r.add_argument("--precision", default="bf16")
    r.add_argument("--shapes", default="l3,l2")
    r.add_argument("--recipe", default="--isolate-lines --split-sentences",
                   help="more distill flags: the CPU study's best data setting (BENCHMARKS.md, Tuning)")  # fmt: skip
    r.add_argument("--curve-points", type=int, default=6, help="snapshots scored for the learning curve")
    r.add_argument("--probe-train", type=int, default=10_000, help="SST-2 probe train rows (the study's 10,000)")
    r.add_argument("--budget-s", type=float, default=0.0,
                   help="seconds for the whole run (0: none): each distillation gets a share, less its scoring, "
                        "and one stopped at its share is scored at its newest snapshot")  # fmt: skip
    r.add_argument(
        "--keep-weights",
        default="l3,l2",
        help="shapes whose weights come back (the device returns 8 files: a student takes 2 or 3)",
    )
    s = sub.add_parser("restore")
    s.add_argument("returned", type=Path)
    s.add_argument("--dest", type=Path, default=ROOT / "runs" / "gpu-long")
    args = parser.parse_args()
    if args.verb == "prepare":
        prepare(args.carry)
    elif args.verb == "run":
        run(args)
    else:
        restore(args.returned, args.dest)


if __name__ == "__main__":
    main()
