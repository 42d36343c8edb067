"""fp32 export: a Hugging Face encoder (or sequence classifier) directory -> one ONNX file.

Exported with the TorchScript-based `torch.onnx.export(dynamo=False)` and eager attention: on
torch 2.13 that graph is the one `onnxruntime.transformers.optimizer` fuses completely
(Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization in every layer), while the
dynamo exporter's graph fused no Attention and could not be down-converted to a fixed opset 17.
The graph outputs the token states and the pooled, L2-normalised sentence embedding (or the
logits of a classifier), so a server need not pool in Python.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from studentpack.engines import is_classifier_config
from studentpack.ground.errors import UserError
from studentpack.model import adapter
from studentpack.model.sentence_head import SentenceHead, dense_width, load_sentence_head
from studentpack.text.sources import sequence_limit

OPSET = 17
MAX_IR_VERSION = 13  # onnxruntime 1.31 refuses IR > 13; onnx 1.23's helpers would write 14
_TWO_GB = 2**31
EMBEDDING_OUTPUTS = ("token_embeddings", "sentence_embedding")
CLASSIFIER_OUTPUTS = ("logits",)


@dataclass(frozen=True)
class GraphFacts:
    """What the exported graph is: the facts every later stage (fusion, gates, serving) needs."""

    kind: str  # "embedding" or "classifier"
    model_type: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    hidden_size: int
    num_heads: int
    num_layers: int
    vocab_size: int
    max_length: int  # the longest sequence the model accepts (position embeddings, tokenizer)
    labels: tuple[str, ...] = field(default=())
    embedding_size: int = 0  # the sentence embedding's width: the Dense's output when the model has one

    @property
    def sentence_width(self) -> int:
        return self.embedding_size or self.hidden_size

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model_type": self.model_type,
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "hidden_size": self.hidden_size,
            "embedding_size": self.sentence_width,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "vocab_size": self.vocab_size,
            "max_length": self.max_length,
            "labels": list(self.labels),
        }


class EmbeddingGraph(nn.Module):
    """Encoder -> (token states (B, T, H), sentence embedding (B, D): mean-pooled, the directory's Dense, L2)."""

    def __init__(self, encoder: nn.Module, head: SentenceHead | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head or SentenceHead()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return states, self.head(states, attention_mask)  # (B, T, H), (B, D)


class ClassifierGraph(nn.Module):
    """Sequence classifier -> logits (B, C)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.classifier(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits  # (B, C)


def describe(config: dict[str, Any], tokenizer: Any, model_dir: Path | None = None) -> GraphFacts:
    """GraphFacts from config.json data, the tokenizer and the directory's Dense config, before loading weights."""
    classifier = is_classifier_config(config)
    wanted = ("input_ids", "attention_mask", "token_type_ids")
    names = tuple(n for n in wanted if n in getattr(tokenizer, "model_input_names", wanted))
    if names[:2] != ("input_ids", "attention_mask"):
        raise UserError("the tokenizer does not produce input_ids and attention_mask")
    labels: tuple[str, ...] = ()
    if classifier:
        id2label = config.get("id2label") or {}
        count = int(config.get("num_labels", len(id2label) or 2))
        labels = tuple(str(id2label.get(str(i), id2label.get(i, i))) for i in range(count))
    return GraphFacts(
        kind="classifier" if classifier else "embedding",
        model_type=str(config.get("model_type")),
        input_names=names,
        output_names=CLASSIFIER_OUTPUTS if classifier else EMBEDDING_OUTPUTS,
        hidden_size=int(config["hidden_size"]),
        num_heads=int(config["num_attention_heads"]),
        num_layers=int(config["num_hidden_layers"]),
        vocab_size=int(config["vocab_size"]),
        max_length=sequence_limit(config, tokenizer),
        labels=labels,
        embedding_size=(dense_width(model_dir) or 0) if model_dir is not None and not classifier else 0,
    )


def load_graph_module(path: Path, info: GraphFacts, allow_pickle: bool = False) -> nn.Module:
    """The model with eager attention (the form the fuser recognises), wrapped to the graph's outputs."""
    if info.kind == "classifier":
        model = adapter.load_classifier(path, allow_pickle=allow_pickle, attn_implementation="eager")
        return ClassifierGraph(model).eval()
    model = adapter.load_encoder(path, allow_pickle=allow_pickle, attn_implementation="eager")
    head = load_sentence_head(path, info.hidden_size)
    width = head.width(info.hidden_size)
    if width != info.sentence_width:
        raise UserError(f"{path}: its Dense gives {width}-wide embeddings, the plan says {info.sentence_width} "
                        "(describe() the model with its directory)")  # fmt: skip
    return EmbeddingGraph(model, head).eval()


def example_inputs(info: GraphFacts, batch: int = 2, length: int = 16) -> tuple[torch.Tensor, ...]:
    """A padded trace example: row 0 full, the others shorter (so masking is traced as data)."""
    length = min(length, info.max_length)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(
        low=min(5, info.vocab_size - 1), high=info.vocab_size, size=(batch, length), generator=generator
    )
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1:, max(1, length // 2) :] = 0
    tensors = [ids * mask, mask]
    if "token_type_ids" in info.input_names:
        tensors.append(torch.zeros(batch, length, dtype=torch.long))
    return tuple(tensors)


def export_fp32(module: nn.Module, info: GraphFacts, out_file: Path) -> onnx.ModelProto:
    """Trace `module` to `out_file` (opset 17, dynamic batch and sequence axes) and finalise it."""
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in info.input_names}
    for name in info.output_names:
        axes[name] = {0: "batch", 1: "sequence"} if name == "token_embeddings" else {0: "batch"}
    raw = out_file.with_name(out_file.stem + ".raw.onnx")
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo, which does not fuse (see above).
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="The feature will be removed")
        # Shape-dependent Python branches in transformers' mask code are traced as constants; the
        # parity gate checks the graph at batch sizes and lengths other than the trace example.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, message="Exporting aten::index operator")
        torch.onnx.export(
            module,
            example_inputs(info),
            str(raw),
            input_names=list(info.input_names),
            output_names=list(info.output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(raw))
    raw.unlink()
    declare_output_shapes(model, info)
    save_model(model, out_file)
    return model


def declare_output_shapes(model: onnx.ModelProto, info: GraphFacts) -> None:
    """Name the dynamic axes and state the fixed ones (the tracer leaves widths as anonymous symbols)."""
    shapes: dict[str, list[str | int]] = {
        "token_embeddings": ["batch", "sequence", info.hidden_size],
        "sentence_embedding": ["batch", info.sentence_width],
        "logits": ["batch", len(info.labels)],
    }
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, value in zip(dims, shapes[output.name], strict=True):
            if isinstance(value, int):
                dim.dim_value = value
            else:
                dim.dim_param = value


def pin_ir_version(model: onnx.ModelProto) -> None:
    """Keep the IR version within what the installed onnxruntime reads."""
    needed = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    target = max(min(model.ir_version, MAX_IR_VERSION), needed)
    if target > MAX_IR_VERSION:
        raise UserError(f"the graph needs ONNX IR {target}, newer than onnxruntime reads (<= {MAX_IR_VERSION})")
    model.ir_version = target


def ensure_opset_imports(model: onnx.ModelProto) -> None:
    """Declare every operator domain the nodes use (fusion adds com.microsoft contrib ops)."""
    declared = {o.domain for o in model.opset_import}
    for domain in sorted({node.domain for node in model.graph.node} - declared - {"ai.onnx"}):
        model.opset_import.append(onnx.helper.make_opsetid(domain, 1))


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Pin the IR version, refuse graphs over 2 GB (single-file protobuf limit), check, write one file."""
    ensure_opset_imports(model)
    pin_ir_version(model)
    size = model.ByteSize()
    if size >= _TWO_GB:
        raise UserError(f"the graph is {size / 2**30:.1f} GB; single-file ONNX is limited to 2 GB")
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path), save_as_external_data=False)
