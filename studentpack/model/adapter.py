"""The only module that knows Hugging Face model internals: loading, module paths and hooks.

Supported: BERT-family encoders whose layers sit at `encoder.layer[i].attention.self.{query,key,value}`
(BERT, MiniLM, RoBERTa, XLM-R, CamemBERT).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studentpack.ground.errors import UserError
from studentpack.model.features import FeatureRequest, Features
from studentpack.text.segments import encoder_inputs
from studentpack.text.sources import ROBERTA_FAMILY, read_model_config

# Hugging Face models are reached by attribute paths that differ per family; typed loosely on purpose.
HFModel = Any

SUPPORTED_MODEL_TYPES = ("bert", *ROBERTA_FAMILY)
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# MLM-head tensor names inside full checkpoints, per family, mapped to our MLMHead names
_MLM_HEAD_KEYS = {
    "bert": {
        "cls.predictions.transform.dense.weight": "dense.weight",
        "cls.predictions.transform.dense.bias": "dense.bias",
        "cls.predictions.transform.LayerNorm.weight": "norm.weight",
        "cls.predictions.transform.LayerNorm.bias": "norm.bias",
        "cls.predictions.bias": "decoder.bias",
    },
    "roberta": {
        "lm_head.dense.weight": "dense.weight",
        "lm_head.dense.bias": "dense.bias",
        "lm_head.layer_norm.weight": "norm.weight",
        "lm_head.layer_norm.bias": "norm.bias",
        "lm_head.bias": "decoder.bias",
    },
}


def quiet_transformers() -> None:
    """Silence load-time chatter (unused head weights, etc.) that users cannot act on."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.ERROR)


def check_encoder_dir(path: Path, allow_pickle: bool = False, role: str = "model") -> dict[str, Any]:
    """Validate a model directory before any heavy work; return its config as plain data."""
    config = read_model_config(path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UserError(
            f"{role} {path} is a {model_type or 'unknown'!s} model; supported encoders: "
            + ", ".join(SUPPORTED_MODEL_TYPES)
        )
    if config.get("is_decoder"):
        raise UserError(f"{role} {path} is configured as a decoder; an encoder is needed")
    if not any((path / name).is_file() for name in _SAFE_WEIGHTS):
        if any((path / name).is_file() for name in _PICKLE_WEIGHTS):
            if not allow_pickle:
                raise UserError(
                    f"{role} {path} has only pickle weights (pytorch_model.bin), which can run code when "
                    "loaded; convert them to safetensors or pass --allow-pickle if you trust the source"
                )
        else:
            raise UserError(f"{role} {path} has no weights (model.safetensors or pytorch_model.bin)")
    return config


# files that hold a vocabulary: without one, transformers 5 quietly builds a tokenizer that knows only
# its special tokens, and every word becomes [UNK]
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spm.model",
                   "tokenizer.model")  # fmt: skip


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{path} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise UserError(f"cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}") from exc
    if len(tokenizer) <= len(tokenizer.all_special_tokens) + 1:
        raise UserError(f"the tokenizer in {path} has an empty vocabulary ({len(tokenizer)} tokens)")
    return tokenizer


def load_encoder(
    path: Path, allow_pickle: bool = False, attn_implementation: str = "sdpa", role: str = "model"
) -> HFModel:
    """Load the bare encoder (AutoModel) from safetensors; pickle only when explicitly allowed."""
    from transformers import AutoModel

    check_encoder_dir(path, allow_pickle, role)
    quiet_transformers()
    has_safetensors = any((path / name).is_file() for name in _SAFE_WEIGHTS)
    try:
        model = AutoModel.from_pretrained(
            str(path), use_safetensors=has_safetensors, attn_implementation=attn_implementation
        )
    except Exception as exc:
        raise UserError(f"cannot load {role} {path}: {str(exc).splitlines()[0]}") from exc
    return model


def load_classifier(path: Path, allow_pickle: bool = False, attn_implementation: str = "sdpa") -> HFModel:
    """Load a fine-tuned sequence-classification model (encoder + head) from safetensors."""
    from transformers import AutoModelForSequenceClassification

    check_encoder_dir(path, allow_pickle, "classifier")
    quiet_transformers()
    has_safetensors = any((path / name).is_file() for name in _SAFE_WEIGHTS)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(path), use_safetensors=has_safetensors, attn_implementation=attn_implementation
        )
    except Exception as exc:
        raise UserError(f"cannot load classifier {path}: {str(exc).splitlines()[0]}") from exc


def encoder_layers(model: HFModel) -> Any:
    return model.encoder.layer


def word_embeddings(model: HFModel) -> nn.Embedding:
    return model.embeddings.word_embeddings


def pooler(model: HFModel) -> nn.Module | None:
    return getattr(model, "pooler", None)


def truncate_layers(model: HFModel, keep: int) -> None:
    """Drop transformer layers above `keep` (a frozen teacher need not compute what no loss reads)."""
    layers = encoder_layers(model)
    if 0 < keep < len(layers):
        model.encoder.layer = nn.ModuleList(list(layers)[:keep])


def _qkv_modules(model: HFModel, layer: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    attn = encoder_layers(model)[layer - 1].attention.self
    return attn.query, attn.key, attn.value


@contextmanager
def capture_qkv(model: HFModel, layers: frozenset[int]) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Record the query/key/value projections (B, T, H) of the given 1-based layers via forward hooks."""
    store: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    handles = []
    for layer in sorted(layers):
        for module in _qkv_modules(model, layer):
            handles.append(module.register_forward_hook(_recorder(store[layer])))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def _recorder(sink: list[torch.Tensor]) -> Any:
    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        sink.append(output)

    return hook


@contextmanager
def _only_first_layers(model: HFModel, keep: int) -> Iterator[None]:
    """Temporarily run only the first `keep` transformer layers."""
    full = model.encoder.layer
    model.encoder.layer = nn.ModuleList(list(full)[:keep])
    try:
        yield
    finally:
        model.encoder.layer = full


def run_encoder(
    model: HFModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    request: FeatureRequest,
    segments: torch.Tensor | None = None,
    token_types: torch.Tensor | None = None,
) -> tuple[Features, torch.Tensor]:
    """Forward pass returning the requested features and the last computed hidden state (B, T, H).

    When the deepest thing asked for is a layer's Q/K/V (MHA), that layer's attention output and
    FFN are not computed at all: layers below it run normally, then only its three projections.
    segments (B, T), from isolated packing, keeps each packed line to itself (studentpack.text.segments);
    token_types (B, T), from pair inputs, marks each pair's second side as the tokenizer does.
    """
    top = max(request.qkv_layers, default=0)
    qkv_only_top = top > max(request.hidden_layers, default=0) and not request.mlm_logits
    want_hidden = bool(request.hidden_layers)
    below = request.qkv_layers - {top} if qkv_only_top else request.qkv_layers
    inputs = {"attention_mask": attention_mask} if segments is None else encoder_inputs(model, segments)
    if token_types is not None:
        inputs["token_type_ids"] = token_types
    with capture_qkv(model, below) as qkv:
        if qkv_only_top:
            with _only_first_layers(model, top - 1):
                out = model(input_ids=input_ids, output_hidden_states=want_hidden, **inputs)
        else:
            out = model(input_ids=input_ids, output_hidden_states=want_hidden, **inputs)
    triples = {layer: (q, k, v) for layer, (q, k, v) in qkv.items()}
    if qkv_only_top:
        triples[top] = tuple(m(out.last_hidden_state) for m in _qkv_modules(model, top))
    hidden = {i: out.hidden_states[i] for i in request.hidden_layers} if want_hidden else {}
    features = Features(attention_mask=attention_mask, hidden=hidden, qkv=triples, segments=segments,
                        token_types=token_types)  # fmt: skip
    return features, out.last_hidden_state


def mlm_head_weights(path: Path, model_type: str) -> dict[str, torch.Tensor] | None:
    """The pretrained MLM head inside a full checkpoint (BertForMaskedLM, RobertaForMaskedLM), if any.

    Returned under MLMHead's parameter names; the decoder weight is tied to the word embeddings in
    these checkpoints and is taken from there by the caller.
    """
    from safetensors import safe_open

    family = "roberta" if model_type in ROBERTA_FAMILY else "bert"
    names = _MLM_HEAD_KEYS[family]
    file = path / "model.safetensors"
    if not file.is_file():
        return None
    with safe_open(str(file), framework="pt") as handle:
        keys = set(handle.keys())
        if not all(k in keys for k in names):
            return None
        return {ours: handle.get_tensor(theirs) for theirs, ours in names.items()}


def copy_embeddings(source: HFModel, target: HFModel) -> None:
    target.embeddings.load_state_dict(source.embeddings.state_dict())


def copy_layer(source: HFModel, source_layer: int, target: HFModel, target_layer: int) -> None:
    """Copy 1-based transformer layer `source_layer` of `source` into `target_layer` of `target`."""
    state = encoder_layers(source)[source_layer - 1].state_dict()
    encoder_layers(target)[target_layer - 1].load_state_dict(state)


def copy_pooler(source: HFModel, target: HFModel) -> None:
    src, dst = pooler(source), pooler(target)
    if src is not None and dst is not None:
        dst.load_state_dict(src.state_dict())


def set_dropout(model: HFModel, probability: float) -> None:
    """Set every dropout in the model (hidden and attention) for training; the config is left as is."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability


def freeze_pooler(model: HFModel) -> None:
    """The pooler (CLS dense + tanh) takes no part in task-agnostic transfer; keep it fixed."""
    head = pooler(model)
    if head is not None:
        head.requires_grad_(False)


def shape_of(config: dict[str, Any]) -> tuple[int, int, int, int]:
    """(layers, hidden, heads, intermediate) from a config.json mapping."""
    return (
        int(config["num_hidden_layers"]),
        int(config["hidden_size"]),
        int(config["num_attention_heads"]),
        int(config["intermediate_size"]),
    )


def new_encoder_like(teacher: HFModel, layers: int, hidden: int, heads: int, intermediate: int) -> HFModel:
    """A randomly initialised encoder of the teacher's family and vocabulary with a new shape."""
    import copy

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    config.hidden_size = hidden
    config.num_attention_heads = heads
    config.intermediate_size = intermediate
    config.architectures = [type(teacher).__name__]
    return type(teacher)(config)


# --- task heads (evaluation: `studentpack eval --mode finetune`) ---


def build_sequence_classifier(
    path: Path, num_labels: int, labels: list[str] | None = None, allow_pickle: bool = False
) -> HFModel:
    """An encoder directory + a fresh task head (AutoModelForSequenceClassification).

    `num_labels=1` is a regression head (STS-B); the head's initial weights come from torch's global
    RNG, so seed it first. Saved, the result is a standard sequence-classification directory.
    """
    from transformers import AutoModelForSequenceClassification

    check_encoder_dir(path, allow_pickle, "model")
    quiet_transformers()
    has_safetensors = any((path / name).is_file() for name in _SAFE_WEIGHTS)
    names = labels or [f"LABEL_{i}" for i in range(num_labels)]
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(path),
            num_labels=num_labels,
            problem_type="regression" if num_labels == 1 else "single_label_classification",
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            use_safetensors=has_safetensors,
        )
    except Exception as exc:
        raise UserError(f"cannot build a classifier from {path}: {str(exc).splitlines()[0]}") from exc


def save_pretrained(model: HFModel, tokenizer: Any, directory: Path) -> None:
    """Write a standard Hugging Face directory (config, model.safetensors, tokenizer files)."""
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def head_output_layer(model: HFModel) -> nn.Linear:
    """The last linear layer of a sequence-classification head (BERT: classifier; RoBERTa: classifier.out_proj)."""
    head = model.classifier
    return getattr(head, "out_proj", head)
