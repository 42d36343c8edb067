"""What serving costs in each install: its size on disk, time from `studentpack serve` to ready, and the
server's memory after warm-up; and whether each install answers with the same vectors.

Give each environment as NAME=VENV (a virtual environment with studentpack installed), e.g. the lean
serve-only install and the full one from the README:

    python benchmarks/serve_footprint.py lean=/tmp/lean full=.venv \\
        --model runs/pipeline/mha-l3/onnx/int8-dynamic --model runs/pipeline/mha-l3/onnx/openvino-int8

NAME=VENV@TREE runs the server from a source tree instead (its PYTHONPATH), e.g. an older commit
checked out with `git worktree`, to compare with the code before a change.

Each (environment, model) pair starts its own server three times: time to ready is the median of the
three, memory is read from /proc after the last one has answered 200 requests of held-out English
(`warm-up`: every batch shape the server will see has run). Writes benchmarks/results/serve_footprint.json.
The environment is measured as the size of the venv's files (`du`), including pip itself.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine
from studentpack.tasks.shipped import heldout_english

ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(rb"listening on (http://\S+)")


def _venv_mib(venv: Path) -> float:
    out = subprocess.run(["du", "-sk", str(venv)], capture_output=True, text=True, check=True).stdout
    return round(int(out.split()[0]) / 1024, 1)


def _has(venv: Path, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run([str(venv / "bin" / "python"), "-c", code]).returncode == 0


def _rss_mib(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def _serve(
    venv: Path, model: Path, tree: str | None, timeout_s: float = 120.0
) -> tuple[subprocess.Popen[bytes], str, float]:
    env = {**os.environ, "PYTHONPATH": tree} if tree else None
    start = time.perf_counter()
    proc = subprocess.Popen([str(venv / "bin" / "studentpack"), "serve", f"m={model}", "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)  # fmt: skip
    assert proc.stderr is not None
    url = ""
    for line in proc.stderr:
        match = _LISTENING.search(line)
        if match:
            url = match.group(1).decode()
            break
    if not url:
        raise SystemExit(f"{venv}: the server exited with {proc.wait()} before listening")
    while time.perf_counter() - start < timeout_s:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return proc, url, time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{venv}: not ready within {timeout_s} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _vectors(url: str, texts: list[str], per_request: int = 8) -> np.ndarray:
    rows = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(0, len(texts), per_request):
            answer = client.post("/v1/embeddings", json={"model": "m", "input": texts[i : i + per_request]})
            answer.raise_for_status()
            rows += [item["embedding"] for item in answer.json()["data"]]
    return np.asarray(rows, dtype=np.float32)  # (N, D)


def measure(
    venv: Path, model: Path, texts: list[str], tree: str | None = None, starts: int = 3
) -> tuple[dict[str, Any], np.ndarray]:
    ready = []
    for attempt in range(starts):
        proc, url, seconds = _serve(venv, model, tree)
        ready.append(seconds)
        if attempt < starts - 1:
            _stop(proc)
    try:
        at_ready = _rss_mib(proc.pid)
        vectors = _vectors(url, texts)
        after = _rss_mib(proc.pid)
    finally:
        _stop(proc)
    figures = {"ready_s": [round(s, 2) for s in ready], "ready_s_median": round(statistics.median(ready), 2),
               "rss_mib_at_ready": at_ready["VmRSS"], "rss_mib_after_warmup": after["VmRSS"],
               "peak_rss_mib": after["VmHWM"], "requests": -(-len(texts) // 8)}  # fmt: skip
    return figures, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("envs", nargs="+", help="NAME=VENV")
    parser.add_argument("--model", type=Path, action="append", required=True, help="an exported variant directory")
    parser.add_argument("--texts", type=int, default=1600, help="warm-up texts, sent 8 per request")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_footprint.json")
    args = parser.parse_args()
    envs, trees = {}, {}
    for item in args.envs:
        name, _, spec = item.partition("=")
        envs[name], _, trees[name] = spec.partition("@")
    texts = heldout_english()[: args.texts]
    result: dict[str, Any] = {"machine": {**machine(), "cpu_class": cpu_class(cpu_flags())}, "environments": {},
                              "models": {}}  # fmt: skip
    for name, venv in envs.items():
        path = Path(venv).resolve()
        present = {f"has_{m}": _has(path, m) for m in ("torch", "transformers", "openvino")}
        result["environments"][name] = {"venv": str(path), "disk_mib": _venv_mib(path), **present,
                                        "source_tree": trees[name] or "installed"}  # fmt: skip
        print(name, result["environments"][name], flush=True)
    for model in args.model:
        entry: dict[str, Any] = {}
        reference = None
        for name, venv in envs.items():
            figures, vectors = measure(Path(venv).resolve(), model.resolve(), texts, trees[name] or None)
            if reference is None:
                reference = vectors
            else:
                figures["max_abs_diff_vs_first"] = float(np.abs(vectors - reference).max())
            entry[name] = figures
            print(model, name, figures, flush=True)
        result["models"][str(model)] = entry
    atomic.write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
