"""Does the label-free measure track what labelled data says? The validation behind its threshold.

For every student the distillation study trained (3- and 2-layer; HS, MHA, OD; untrained, short and
long runs; `--runs`, default runs/study/<plan>/*/student), it scores on the held-out English sentences
(`embedded:heldout`, 1,000 texts no shipped corpus contains), against the packaged teacher:

  recall@10     the share of the teacher's 10 nearest neighbours of each text that the student also
                ranks in its 10 nearest (x100)
  mean cosine   cos(student, teacher) per text, averaged (x100)

and sets them beside the same students' labelled scores from the study (STS-B zero-shot and the SST-2
probe, as % of the teacher). It reports the Spearman rank correlation of each label-free measure with
each labelled one (and with the lower of the two), and the recall@10 that the data tie to 97% of the
teacher on both labelled metrics: the lowest recall above which every student kept 97% on both, and
the value where a straight line fitted through the students crosses 97%. The pipeline's headline uses
the first (`studentpack.tasks.agreement.RECALL_AT_10_FOR_97`).

    python benchmarks/label_free_validation.py            # study plans: budget, quick (where present)

Writes benchmarks/results/label_free_validation.json and docs/label-free-validation.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.ground import atomic
from studentpack.ground.provenance import machine, package_versions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET = 97.0


def label_free(student: Path, cache: Path) -> dict[str, float]:
    """recall@10 and mean cosine (x100) against the packaged teacher on embedded:heldout, cached."""
    if cache.is_file():
        return json.loads(cache.read_text())
    from studentpack.tasks.options import EvalConfig
    from studentpack.tasks.run import evaluate

    result = evaluate(EvalConfig(model=str(student), task="agreement", teacher="default", save=False)).result
    scores = {name: result.metrics[name] for name in ("recall_at_10", "mean_cosine", "rank_spearman")}
    atomic.write_json(cache, scores)
    return scores  # type: ignore[return-value]


def students(runs: Path, plans: list[str]) -> list[dict[str, Any]]:
    """Every scored study row whose student directory is here: name, plan, labelled % of the teacher."""
    rows = []
    for plan in plans:
        results = RESULTS / f"distill_study_{plan}.json"
        if not results.is_file():
            continue
        for row in json.loads(results.read_text())["rows"]:
            directory = runs / plan / row["name"] / "student"
            pct = row.get("pct_of_teacher") or {}
            if directory.is_dir() and "stsb" in pct and "sst2" in pct:
                rows.append({"name": row["name"], "plan": plan, "method": row["method"], "steps": row["steps"],
                             "layers": row["student"]["layers"], "path": directory, "stsb_pct": pct["stsb"],
                             "sst2_pct": pct["sst2"], "labelled_min_pct": min(pct["stsb"], pct["sst2"])})  # fmt: skip
    return rows


def threshold(recall: np.ndarray, labelled_min: np.ndarray) -> dict[str, float | None]:
    """The recall@10 tied to TARGET % on both labelled metrics, two ways."""
    below = recall[labelled_min < TARGET]
    above = recall[labelled_min >= TARGET]
    # the lowest recall that no student under the target reaches: above it, every student kept the target
    separating = float(below.max()) if below.size else None
    slope, intercept = np.polyfit(recall, labelled_min, 1)
    return {
        "no_student_below_target_at_or_above": separating,
        "lowest_recall_keeping_target": float(above.min()) if above.size else None,
        "linear_fit_crossing": float((TARGET - intercept) / slope) if slope else None,
        "linear_fit": {"slope": float(slope), "intercept": float(intercept)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "study")
    parser.add_argument("--plans", default="budget,quick")
    args = parser.parse_args()
    from scipy.stats import spearmanr

    rows = students(args.runs, args.plans.split(","))
    if len(rows) < 3:
        raise SystemExit(f"only {len(rows)} scored students under {args.runs}: run benchmarks/distill_study.py first")
    for row in rows:
        scores = label_free(row["path"], row["path"].parent / "label-free.json")
        row |= {"recall_at_10": scores["recall_at_10"], "mean_cosine": scores["mean_cosine"],
                "rank_spearman": scores["rank_spearman"], "path": str(row["path"])}  # fmt: skip
        print(f"{row['name']:28s} recall@10 {row['recall_at_10']:6.2f}  cosine {row['mean_cosine']:6.2f}  "
              f"STS-B {row['stsb_pct']:6.2f}%  probe {row['sst2_pct']:6.2f}%")  # fmt: skip

    def rho(measure: str, labelled: str) -> float:
        return round(float(spearmanr([r[measure] for r in rows], [r[labelled] for r in rows]).statistic), 3)

    correlations = {measure: {labelled: rho(measure, labelled) for labelled in ("stsb_pct", "sst2_pct",
                                                                                "labelled_min_pct")}
                    for measure in ("recall_at_10", "mean_cosine", "rank_spearman")}  # fmt: skip
    recall = np.array([r["recall_at_10"] for r in rows])
    labelled_min = np.array([r["labelled_min_pct"] for r in rows])
    report = {
        "benchmark": "label_free_validation",
        "texts": "embedded:heldout (1,000 sentences)",
        "teacher": "packaged all-MiniLM-L6-v2",
        "students": rows,
        "spearman": correlations,
        "threshold_for_97": threshold(recall, labelled_min),
        "machine": machine(),
        "versions": package_versions(),
    }
    atomic.write_json(RESULTS / "label_free_validation.json", report)
    from studentpack.tasks.agreement import RECALL_AT_10_FOR_97

    report["threshold_for_97"]["used"] = RECALL_AT_10_FOR_97
    atomic.write_json(RESULTS / "label_free_validation.json", report)
    _plot(rows, RECALL_AT_10_FOR_97, ROOT / "docs" / "label-free-validation.png")
    print(json.dumps({"spearman": correlations, "threshold_for_97": report["threshold_for_97"]}, indent=1))


def _plot(rows: list[dict[str, Any]], used: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True)
    colors = {"hs": "#2ca02c", "mha": "#1f77b4", "od": "#d62728"}
    for ax, key, title in ((axes[0], "stsb_pct", "STS-B zero-shot"), (axes[1], "sst2_pct", "SST-2 probe")):
        for row in rows:
            color = "#7f7f7f" if row["steps"] <= 1 else colors.get(row["method"], "#7f7f7f")  # untrained: grey
            ax.scatter(row["recall_at_10"], row[key], c=color, marker="o" if row["layers"] == 3 else "s",
                       edgecolors="black", linewidths=0.4)  # fmt: skip
        ax.axhline(TARGET, color="grey", linestyle=":", linewidth=0.8)
        ax.axvline(used, color="black", linestyle="--", linewidth=0.8)
        ax.text(used, ax.get_ylim()[0], f" {used:g}", fontsize=8, va="bottom")
        ax.set_title(f"{title}: % of the teacher against label-free recall@10", fontsize=10)
        ax.set_xlabel("recall@10 of the teacher's neighbours, held-out English (%)")
        ax.set_ylabel("% of the teacher")
        ax.grid(True, alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", color=c, linestyle="", label=m) for m, c in colors.items()]
    handles += [Line2D([], [], marker="o", color="#7f7f7f", linestyle="", label="untrained (teacher layers)")]
    handles += [Line2D([], [], color="black", linestyle="--", label="the pipeline's target")]
    handles += [Line2D([], [], marker="s", color="grey", linestyle="", label="2 layers (circles: 3)")]
    axes[1].legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
