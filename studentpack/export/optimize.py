"""Fusion: `onnxruntime.transformers.optimizer` with the model's real head count and width.

On the eager-attention TorchScript graph every layer fuses to Attention + 2 SkipLayerNormalization
+ BiasGelu, and the embeddings to EmbedLayerNormalization. `fused_operator_counts` goes into
export.json; `fusion_problems` says what did not fuse (the graph stays correct, only slower).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx

from studentpack.export.onnx import GraphFacts, save_model

# the fuser's chatter ("symbolic shape inference disabled or failed") is not actionable for users
_NOISY_LOGGERS = ("onnxruntime.transformers", "fusion_base", "onnx_model", "fusion_utils", "shape_infer_helper")


@contextmanager
def quiet_fuser() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def fuse(src: Path, dst: Path, info: GraphFacts, use_gpu: bool = False) -> onnx.ModelProto:
    """Fuse the fp32 graph at `src` into `dst`; `use_gpu` picks the CUDA-specific fusions (fp16 path)."""
    model = fused_model(src, info, use_gpu)
    save_model(model, dst)
    return model


def fused_model(src: Path, info: GraphFacts, use_gpu: bool = False) -> onnx.ModelProto:
    from onnxruntime.transformers import optimizer

    with quiet_fuser():
        optimized = optimizer.optimize_model(
            str(src),
            model_type="bert",  # BERT-family encoders (BERT, RoBERTa, XLM-R share the layer shape)
            num_heads=info.num_heads,
            hidden_size=info.hidden_size,
            opt_level=0,  # Python fusions only: the graph stays portable, ORT optimises at load time
            use_gpu=use_gpu,
        )
    return optimized.model


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Operator type -> number of nodes, sorted by name."""
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


_FUSED_OPS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu")
_FUSED_OPS_EXTRA = ("Gelu", "FastGelu", "LayerNormalization", "QAttention", "QEmbedLayerNormalization")


def fused_operator_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Counts of the fused operators the transformer optimizer produces (zeros included for the main ones)."""
    counts = op_counts(model)
    found = {op: counts.get(op, 0) for op in _FUSED_OPS}
    found.update({op: counts[op] for op in _FUSED_OPS_EXTRA if counts.get(op)})
    return found


def fusion_problems(counts: dict[str, int], info: GraphFacts) -> list[str]:
    """What a fully fused BERT-family graph has and this one lacks (empty when fusion is complete)."""
    layers = info.num_layers
    attention = counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0) + counts.get("QAttention", 0)
    problems = []
    if attention < layers:
        problems.append(f"Attention fused in {attention} of {layers} layers")
    if counts.get("SkipLayerNormalization", 0) < 2 * layers:
        problems.append(f"SkipLayerNormalization {counts.get('SkipLayerNormalization', 0)} (expected {2 * layers})")
    gelu = counts.get("BiasGelu", 0) + counts.get("Gelu", 0) + counts.get("FastGelu", 0)
    if gelu < layers:
        problems.append(f"Gelu fused in {gelu} of {layers} layers")
    return problems
