"""STS-B fine-tuned by the bi-encoder protocol (`studentpack eval --mode biencoder`: the embedding itself,
cosine loss) next to each model's zero-shot score, for the teacher and the students given.

    python benchmarks/finetune_protocols.py teacher=default mha-l3=runs/pipeline/mha-l3/student \\
        hs-l2=runs/pipeline/hs-l2/student --data ../shared/data/stsb --epochs 1 --lr 2e-5 --seed 0

Each model: `eval --task stsb` (zero-shot) then `eval --mode biencoder`; students are also given as % of
the teacher fine-tuned by the same recipe. Writes benchmarks/results/finetune_protocols.json.
`--collect DIR` reads the zs-NAME.json / be-NAME.json files such a run left in DIR instead of running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from studentpack.ground import atomic
from studentpack.ground.isa import cpu_class
from studentpack.ground.provenance import cpu_flags, machine

ROOT = Path(__file__).resolve().parents[1]


def _eval(args: list[str], out: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "studentpack", "eval", *args, "--json"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    out.write_text(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME=PATH (the first is the teacher)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "stsb"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--collect", type=Path, help="read the results of an earlier run from this directory")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_protocols.json")
    args = parser.parse_args()
    models = dict(item.split("=", 1) for item in args.models)
    recipe = ["--epochs", str(args.epochs), "--lr", str(args.lr), "--seed", str(args.seed)]
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        where = args.collect or Path(tmp)
        for name, path in models.items():
            if args.collect is None:
                base = [path, "--task", "stsb", "--data", args.data, "--threads", "2"]
                _eval([*base, "--no-save"], where / f"zs-{name}.json")
                _eval([*base, "--mode", "biencoder", *recipe, "--out", str(where / f"out-{name}"), "--overwrite"],
                      where / f"be-{name}.json")  # fmt: skip
            zeroshot = json.loads((where / f"zs-{name}.json").read_text())
            tuned = json.loads((where / f"be-{name}.json").read_text())
            rows[name] = {"model": path, "zeroshot": zeroshot["value"], "biencoder": tuned["value"],
                          "train_seconds": tuned["details"]["train_seconds"], "steps": tuned["details"]["steps"],
                          "final_loss": tuned["details"]["final_loss"]}  # fmt: skip
    teacher = next(iter(rows.values()))
    for row in rows.values():
        row["biencoder_pct_of_teacher"] = round(100 * row["biencoder"] / teacher["biencoder"], 1)
        row["zeroshot_pct_of_teacher"] = round(100 * row["zeroshot"] / teacher["zeroshot"], 1)
    result = {"machine": {**machine(), "cpu_class": cpu_class(cpu_flags())}, "data": args.data,
              "recipe": {"epochs": args.epochs, "lr": args.lr, "seed": args.seed}, "models": rows}  # fmt: skip
    atomic.write_json(args.out, result)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
