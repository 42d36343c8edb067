"""Evaluation tasks (STS-B, SST-2, teacher agreement) over the one `open_model` scoring protocol.

    from studentpack.tasks import EvalConfig, evaluate
    evaluation = evaluate(EvalConfig(model="runs/mha-l3/student", task="stsb", data="dev.tsv", save=False))
    evaluation.result.value   # Spearman x100

Modules: `data` (table readers), `sets` (task examples from a table), `shipped` (embedded texts),
`metrics`, `stsb`, `sst2`, `agreement`, `finetune`, `report` (JSON, table, eval.json), `options`
(EvalConfig), `model_ref` (resolving the models named), `splits` (the data an evaluation scores),
`scoring`, `finetune_eval` (--mode finetune), `run` (check, score, save). Importing this package
does not import torch.
"""

from __future__ import annotations

from studentpack.tasks.options import MODES, EvalConfig
from studentpack.tasks.report import EvalResult
from studentpack.tasks.run import Evaluation, evaluate

__all__ = ["MODES", "EvalConfig", "EvalResult", "Evaluation", "evaluate"]
