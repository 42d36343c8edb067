"""Token ids of texts through a cache of each word's ids, for BERT's uncased WordPiece tokenizers.

Why: a static student's encoding is a table lookup and a mean, so the tokenizer is most of its cost, and
most of the tokenizer's cost is per call (Encoding objects, offsets, the copy into Python lists), not
WordPiece itself. A tokenizer made of BertNormalizer (lowercasing), BertPreTokenizer and WordPiece splits
a printable-ASCII text exactly as `_WORDS` does below: lowercase it, then take each run of letters and
digits as a word and every other non-space character as a word of its own. WordPiece then works word by
word, so a word's ids never depend on its neighbours and can be cached.

Everything else goes through the tokenizer: texts with non-ASCII or control characters (accents, CJK,
the controls the normaliser drops) and texts holding a character that can start an added token (`[` of
`[MASK]`), which the tokenizer matches before it normalises. `tests/test_word_ids.py` checks the ids
against the tokenizer's on real English and on those cases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import chain
from typing import Any

_PRINTABLE_ASCII = frozenset(map(chr, range(0x20, 0x7F))) | {"\t", "\n", "\r"}
_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9 \t\n\r]")
CACHE_WORDS = 200_000  # distinct words kept (a few tens of MB); past it the cache starts again


class _WordCache(dict[str, list[int]]):
    """word -> its ids; a missing word is tokenised once (so lookups can run in C through `map`)."""

    def __init__(self, tokenizer: Any, limit: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.limit = limit

    def __missing__(self, word: str) -> list[int]:
        if len(self) >= self.limit:
            self.clear()  # bounded memory whatever the traffic; the common words come back at once
        ids = self[word] = self.tokenizer.encode(word, add_special_tokens=False).ids
        return ids


class WordIds:
    """`ids(texts)`: each text's token ids (no special tokens), equal to the tokenizer's."""

    def __init__(self, tokenizer: Any, limit: int = CACHE_WORDS, spec: dict[str, Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.cache = _WordCache(tokenizer, limit)
        spec = spec if spec is not None else json.loads(tokenizer.to_str())
        added = [token["content"] for token in spec.get("added_tokens", [])]
        # a text holding any character that starts an added token goes to the tokenizer, which matches them
        starts = {c for content in added if content for c in (content[0], content[0].lower())}
        # texts made only of these characters are split here; one match decides a whole batch (joined)
        self.covered = re.compile("[" + "".join(map(re.escape, sorted(_PRINTABLE_ASCII - starts))) + "]*\\Z")

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> WordIds | None:
        """A cache for the tokenizer where the word split is exact for it, else None (its JSON read once)."""
        spec = json.loads(tokenizer.to_str())
        return cls(tokenizer, spec=spec) if cls.applies(tokenizer, spec) else None

    @staticmethod
    def applies(tokenizer: Any, spec: dict[str, Any] | None = None) -> bool:
        """Whether the tokenizer is BERT's uncased WordPiece pipeline, the one the word split reproduces."""
        spec = spec if spec is not None else json.loads(tokenizer.to_str())
        normalizer, pre = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
        return (
            normalizer.get("type") == "BertNormalizer"
            and normalizer.get("lowercase") is True
            and normalizer.get("clean_text") is True
            and pre.get("type") == "BertPreTokenizer"
            and (spec.get("model") or {}).get("type") == "WordPiece"
        )

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        if self.covered.match("".join(texts)):  # the common case: every text is plain English
            return [self._split(text) for text in texts]
        out: list[list[int]] = []
        odd: list[int] = []  # texts the word split does not cover, tokenised together at the end
        for text in texts:
            if self.covered.match(text):
                out.append(self._split(text))
            else:
                odd.append(len(out))
                out.append([])
        encoded = self.tokenizer.encode_batch_fast([texts[i] for i in odd], add_special_tokens=False)
        for i, encoding in zip(odd, encoded, strict=True):
            out[i] = encoding.ids
        return out

    def _split(self, text: str) -> list[int]:
        # map and chain run the lookups in C; only a word seen for the first time calls back into Python
        return list(chain.from_iterable(map(self.cache.__getitem__, _WORDS.findall(text.lower()))))
