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
from typing import Any

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e\t\n\r]*\Z")
_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9 \t\n\r]")
CACHE_WORDS = 200_000  # distinct words kept (a few tens of MB); past it the cache starts again


class WordIds:
    """`ids(texts)`: each text's token ids (no special tokens), equal to the tokenizer's."""

    def __init__(self, tokenizer: Any, limit: int = CACHE_WORDS, spec: dict[str, Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.limit = limit
        self.cache: dict[str, list[int]] = {}
        spec = spec if spec is not None else json.loads(tokenizer.to_str())
        added = [token["content"] for token in spec.get("added_tokens", [])]
        # a text holding any character that starts an added token goes to the tokenizer, which matches them
        self.added_starts = frozenset(c for content in added if content for c in (content[0], content[0].lower()))

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
        out: list[list[int]] = []
        odd: list[int] = []  # texts the word split does not cover, tokenised together at the end
        for text in texts:
            if not _PRINTABLE_ASCII.match(text) or any(c in text for c in self.added_starts):
                odd.append(len(out))
                out.append([])
                continue
            row: list[int] = []
            for word in _WORDS.findall(text.lower()):
                found = self.cache.get(word)
                if found is None:
                    found = self._word(word)
                row.extend(found)
            out.append(row)
        if odd:
            encoded = self.tokenizer.encode_batch_fast([texts[i] for i in odd], add_special_tokens=False)
            for i, encoding in zip(odd, encoded, strict=True):
                out[i] = encoding.ids
        return out

    def _word(self, word: str) -> list[int]:
        if len(self.cache) >= self.limit:
            self.cache.clear()  # bounded memory whatever the traffic; the common words come back at once
        ids = self.cache[word] = self.tokenizer.encode(word, add_special_tokens=False).ids
        return ids
