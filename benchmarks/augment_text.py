"""Word-replacement augmentation of a task's train table, for task distillation (TinyBERT's data augmentation).

TinyBERT (Jiao et al., 2020) grows a small task's train set for its task-specific distillation stage:
each word of a sentence is, with probability 0.4, replaced by one of its 15 nearest words, and each
sentence yields 20 variants. The teacher then labels every variant, so the variants need no gold
label and a replacement that flips the meaning (good -> bad) is as useful as a synonym: it shows the
student where the teacher's decision moves.

TinyBERT takes its neighbours from BERT's masked-LM predictions and GloVe. The packaged teacher has no
masked-LM head and nothing may be downloaded here, so the neighbours are the nearest whole-word
tokens by cosine of the teacher's own input embeddings (alphabetic vocabulary entries of two letters
or more; a word outside that vocabulary is kept as it is).

    python benchmarks/augment_text.py ../shared/data/sst2/train.tsv /tmp/sst2-aug.tsv --variants 4
    python benchmarks/augment_text.py ../shared/data/stsb/train.tsv /tmp/stsb-aug.tsv --variants 4

The output has the input's columns and rows (first), then the variants. A variant keeps its source
row's label, which no longer describes it: use the table with `--soft-weight 1` (teacher targets
only) or as `distill --corpus` text (labels are not read).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from studentpack.ground import atomic
from studentpack.ground.errors import UserError
from studentpack.tasks.data import read_table
from studentpack.text.corpus import text_columns  # the columns `distill --corpus` reads
from studentpack.text.sources import resolve_model


class Neighbours:
    """The K nearest whole-word vocabulary entries of a word, by the teacher's input embeddings."""

    def __init__(self, model_dir: str, k: int) -> None:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        embeddings = AutoModel.from_pretrained(model_dir).get_input_embeddings().weight.detach()  # [vocab, hidden]
        vocab = tokenizer.get_vocab()
        words = sorted((w for w in vocab if w.isalpha() and w.islower() and len(w) >= 2), key=vocab.__getitem__)
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        table = embeddings[[vocab[w] for w in words]]  # [words, hidden]
        self.table = torch.nn.functional.normalize(table, dim=-1)
        self.k = k
        self.cache: dict[str, list[str]] = {}

    def of(self, word: str) -> list[str]:
        key = word.lower()
        if key not in self.index:
            return []
        if key not in self.cache:
            scores = self.table @ self.table[self.index[key]]  # [words]
            top = torch.topk(scores, self.k + 1).indices.tolist()
            self.cache[key] = [self.words[i] for i in top if self.words[i] != key][: self.k]
        return self.cache[key]


_WORD = re.compile(r"^(\W*)([A-Za-z]+)(\W*)$")  # punctuation around a word stays where it was


def augment(sentence: str, neighbours: Neighbours, rng: random.Random, p: float) -> str:
    out = []
    for token in sentence.split(" "):
        match = _WORD.match(token)
        options = neighbours.of(match.group(2)) if match and rng.random() < p else []
        if not match or not options:
            out.append(token)
            continue
        word = rng.choice(options)
        if match.group(2)[0].isupper():
            word = word.capitalize()
        out.append(match.group(1) + word + match.group(3))
    return " ".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="train table (.tsv/.csv/.jsonl/.json) with sentence or sentence1/2 columns")
    parser.add_argument("out", help="output .tsv")
    parser.add_argument("--teacher", default="default", help="model whose input embeddings give the neighbours")
    parser.add_argument("--variants", type=int, default=4, help="variants per row (TinyBERT: 20)")
    parser.add_argument("--p", type=float, default=0.4, help="chance each word is replaced (TinyBERT: 0.4)")
    parser.add_argument("--k", type=int, default=15, help="neighbours to draw from (TinyBERT: 15)")
    parser.add_argument("--one-side", type=float, default=0.5,
                        help="for pairs: chance a variant changes one sentence only, keeping the other")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.variants < 1 or not 0.0 <= args.p <= 1.0 or args.k < 1 or not 0.0 <= args.one_side <= 1.0:
        return _refuse("--variants and --k must be >= 1, --p and --one-side in [0, 1]")
    try:
        table = read_table(args.table, split="train")
        changeable = text_columns(table, args.table)
        model_dir = resolve_model(args.teacher).path
    except UserError as exc:
        return _refuse(str(exc))
    columns = table.columns
    neighbours = Neighbours(str(model_dir), args.k)
    rng = random.Random(args.seed)
    rows = list(table.rows)
    for row in table.rows:
        for _ in range(args.variants):
            variant = dict(row)
            changed = changeable
            if len(changeable) > 1 and rng.random() < args.one_side:
                changed = [rng.choice(changeable)]
            for column in changed:
                variant[column] = augment(str(row[column]), neighbours, rng, args.p)
            rows.append(variant)
    # the shared TSV layout: tabs, no quoting (a tab or newline inside a value becomes a space)
    lines = ["\t".join(columns)]
    lines += ["\t".join(" ".join(str(row[c]).split()) for c in columns) for row in rows]
    atomic.write_text(Path(args.out), "\n".join(lines) + "\n")
    print(f"{len(table.rows)} rows + {len(rows) - len(table.rows)} variants -> {args.out}")
    return 0


def _refuse(message: str) -> int:
    print(f"augment_text: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
