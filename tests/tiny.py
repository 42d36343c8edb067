"""Tiny random BERT models and tokenizers built in-process (no network, a few hundred KB)."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = (
    "the a of and to in is was for on that with as by it at from his an were are which be this has "
    "also or had not first one their its new after but who two they her she he been other when there "
    "all time good bad movie film great story very more most like than some what about into only"
).split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
VOCAB = SPECIALS + WORDS + CHARS + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]

SENTENCES = [
    "the film was very good and the story was great",
    "a bad movie with a story that was not good",
    "she said that the time was new for all of them",
    "he was one of the first who had been there",
    "they like the film more than the other one",
    "it was about a new time in his story",
    "the story of the movie is very bad",
    "there is a good film on at the time",
    "what is the story about, and who is in it?",
    "some of them were at the film when it was new",
    "the first movie was great, the second one was not",
    "an other story from his time in the film",
]


def make_tokenizer(max_length: int = 64):  # type: ignore[no-untyped-def]
    from transformers import BertTokenizer

    return BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True, model_max_length=max_length)


def make_bert(
    layers: int = 4,
    hidden: int = 32,
    heads: int = 4,
    intermediate: int = 64,
    max_positions: int = 64,
    seed: int = 0,
    init_range: float = 0.02,
):  # type: ignore[no-untyped-def]
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        architectures=["BertModel"],
        initializer_range=init_range,
    )
    return BertModel(config).eval()


def save_bert_dir(path: Path, **kwargs: int) -> Path:
    """A complete local model directory: config.json, model.safetensors, tokenizer files."""
    model = make_bert(**kwargs)
    model.save_pretrained(str(path))
    make_tokenizer(kwargs.get("max_positions", 64)).save_pretrained(str(path))
    return path


def save_roberta_dir(path: Path, layers: int = 2, hidden: int = 32, heads: int = 4) -> Path:
    """A tiny RoBERTa-architecture encoder (our small WordPiece vocabulary; pad id 0 to match it)."""
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=66,
        pad_token_id=0,
        architectures=["RobertaModel"],
    )
    RobertaModel(config).save_pretrained(str(path))
    make_tokenizer(64).save_pretrained(str(path))
    return path


def save_classifier_dir(path: Path, labels: tuple[str, ...] = ("negative", "positive"), seed: int = 1) -> Path:
    """A tiny BertForSequenceClassification directory; one label makes a regressor (cross-encoder)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        architectures=["BertForSequenceClassification"],
    )
    BertForSequenceClassification(config).eval().save_pretrained(str(path))
    make_tokenizer(64).save_pretrained(str(path))
    return path
