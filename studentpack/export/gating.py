"""`VariantGate`: a built variant's gate, run as `studentpack serve` would run the variant.

Parity variants are compared with the PyTorch module on the model's longest inputs; the others with the
fp32 graph on the accuracy sample. Whether the variant's outputs depend on the batch is recorded, not gated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from studentpack.engines.graph import graph_file, read_export_info
from studentpack.export import presets
from studentpack.export.options import ExportOptions, Plan
from studentpack.export.records import gated_as


class VariantGate:
    """Gates the variants of one export; raises validate.GateError (ParityError, AccuracyError) on a failure."""

    def __init__(
        self,
        opts: ExportOptions,
        p: Plan,
        work: Path,
        module: Any,
        info: Any,
        tokenizer: Any,
        log: Callable[[str], None],
    ) -> None:
        self.opts, self.p, self.work, self.log = opts, p, work, log
        self.module, self.info, self.tokenizer = module, info, tokenizer
        self._reference: _Memo | None = None

    def check(self, variant: str, directory: Path) -> dict[str, Any]:
        """The gate's figures for the variant built in `directory`."""
        from studentpack.export import validate

        if variant in presets.PARITY_VARIANTS:
            session = self._session(directory)
            figures = validate.check_parity(
                validate.torch_runner(self.module, self.info),
                session.run,
                session.output_names,
                self.info,
                self.opts.gates.max_abs,
            )
            self.log(f"{variant}: parity max abs {figures['max_abs']:.2e} (<= {self.opts.gates.max_abs:g})")
            return {"parity": {**figures, **gated_as(session)}, **self._batch_invariance(variant, session)}
        if self._reference is None:
            self._reference = _Memo(self._encoder(self.work / "fp32", "fp32"))
        reference = self._reference
        candidate = self._encoder(directory, variant)
        figures = validate.check_accuracy(
            reference, candidate, self.p.sample, self.opts.gates, self.p.task_score, self.opts.eval_task or ""
        )
        self.log(f"{variant}: {_accuracy_line(figures)}")
        invariance = self._batch_invariance(variant, candidate.session)
        return {"accuracy": {**figures, **gated_as(candidate.session)}, **invariance}

    def _batch_invariance(self, variant: str, session: Any) -> dict[str, Any]:
        """Recorded, not gated: a batch-dependent variant is accurate, but the server runs it one text per call."""
        from studentpack.batch_invariance import PROBE_TEXTS, is_invariant, worst_batch_cosine

        output = "logits" if session.kind == "classifier" else "sentence_embedding"
        if output not in session.output_names:
            return {}
        worst = worst_batch_cosine(lambda texts: session.run_texts(texts, [output])[output])
        invariant = is_invariant(worst)
        self.log(f"{variant}: batch invariance: worst cosine {worst:.6f} alone vs in a mixed batch"
                 + ("" if invariant else " (batch-dependent: served one text per call)"))  # fmt: skip
        return {
            "batch_invariance": {"worst_cosine": round(worst, 6), "invariant": invariant, "texts": len(PROBE_TEXTS)}
        }

    def _session(self, directory: Path) -> Any:
        from studentpack.engines.graph import session_class

        graph = graph_file(directory)
        assert graph is not None, directory
        engine: Any = session_class(graph)  # the engine's own __init__ (graph, tokenizer, ...)
        return engine(
            graph,
            self.tokenizer,
            device=self.opts.device,
            threads=self.opts.threads,
            max_length=self.info.max_length,
            warmup=False,
            info={**self.info.as_dict(), **read_export_info(directory)},  # the variant's own settings too
        )

    def _encoder(self, directory: Path, variant: str) -> Any:
        from studentpack.engines.graph import GraphEncoder

        session = self._session(directory)
        session.max_length = min(self.opts.max_length, self.info.max_length)
        return GraphEncoder(session, variant)


class _Memo:
    """The fp32 reference encoder, scored once however many variants are compared with it."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.description = encoder.description
        self.labels = encoder.labels
        self.max_length = encoder.max_length
        self._cache: dict[tuple[Any, ...], np.ndarray] = {}

    @property
    def truncated(self) -> int:
        return int(self.encoder.truncated)

    def encode(self, texts: Any, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        key = ("encode", batch_size, tuple(texts))
        if key not in self._cache:
            self._cache[key] = self.encoder.encode(texts, batch_size=batch_size, progress=progress)
        return self._cache[key]

    def predict(
        self, texts: Any, batch_size: int = 32, progress: bool = False, *, text_pairs: Any = None
    ) -> np.ndarray:
        key = ("predict", batch_size, tuple(texts), None if text_pairs is None else tuple(text_pairs))
        if key not in self._cache:
            self._cache[key] = self.encoder.predict(
                texts, batch_size=batch_size, progress=progress, text_pairs=text_pairs
            )
        return self._cache[key]


def _accuracy_line(figures: dict[str, Any]) -> str:
    if "mean_cosine" in figures:
        line = f"cosine mean {figures['mean_cosine']:.4f} worst {figures['worst_cosine']:.4f}"
    elif "pearson" in figures:
        line = f"output correlation {figures['pearson']:.4f}"
    else:
        line = f"label agreement {figures['label_agreement']:.4f}"
    task = figures.get("task")
    if task:
        line += f"; {task['name']} {task['score']:.2f} (fp32 {task['reference']:.2f})"
    return line
