"""An exported variant's tokenizer through `tokenizers` alone, without transformers.

Serving or scoring a graph needs only the variant's `tokenizer.json` (normaliser, pre-tokeniser,
vocabulary and the post-processor that adds [CLS]/[SEP]). A transformers fast tokenizer runs that same
file through the same library; this class gives the part of its call that graph sessions use
(texts or pairs, truncation at max_length longest-first, padding to the longest row) with the same ids,
so a serve-only install does not need transformers and torch (tests/test_fast_tokenizer.py compares).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studentpack.ground.errors import UserError

TOKENIZER_FILE = "tokenizer.json"


class FastTokenizer:
    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self.backend_tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except Exception as exc:  # the library raises its own exception types for a bad file
            raise UserError(f"cannot read {path / TOKENIZER_FILE}: {str(exc).splitlines()[0]}") from exc
        self.backend_tokenizer.no_padding()
        self.pad_token_id = self._pad_id(path)
        self._lock = threading.Lock()  # truncation is a setting of the shared object: one call at a time

    def _pad_id(self, path: Path) -> int | None:
        """The pad token named by tokenizer_config.json or special_tokens_map.json, as transformers reads it."""
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            try:
                config = json.loads((path / name).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            token = config.get("pad_token") if isinstance(config, dict) else None
            if isinstance(token, dict):
                token = token.get("content")
            if isinstance(token, str):
                return self.backend_tokenizer.token_to_id(token)
        return self.backend_tokenizer.token_to_id("[PAD]")

    def __call__(
        self,
        texts: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        padding: bool = False,
        truncation: bool = False,
        max_length: int | None = None,
        **_: Any,
    ) -> dict[str, list[list[int]]]:
        """{"input_ids", "attention_mask", "token_type_ids"}: one list per text, special tokens added."""
        inputs: list[Any] = list(texts) if text_pairs is None else list(zip(texts, text_pairs, strict=True))
        with self._lock:
            if truncation and max_length:
                self.backend_tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
            else:
                self.backend_tokenizer.no_truncation()
            encodings = self.backend_tokenizer.encode_batch(inputs)
        ids = [list(e.ids) for e in encodings]
        types = [list(e.type_ids) for e in encodings]
        masks = [[1] * len(row) for row in ids]
        if padding and ids:
            longest = max(len(row) for row in ids)
            pad = self.pad_token_id or 0
            for row, kind, mask in zip(ids, types, masks, strict=True):
                missing = longest - len(row)
                row.extend([pad] * missing)
                kind.extend([0] * missing)
                mask.extend([0] * missing)
        return {"input_ids": ids, "attention_mask": masks, "token_type_ids": types}


def load_graph_tokenizer(path: Path) -> Any:
    """The variant's tokenizer: tokenizer.json through `tokenizers` when present (no transformers needed),
    else a transformers tokenizer from the other files (a full install)."""
    if (path / TOKENIZER_FILE).is_file():
        return FastTokenizer(path)
    try:
        from studentpack.model import adapter
    except ImportError as exc:
        raise UserError(f"{path} has no {TOKENIZER_FILE}; reading its other tokenizer files needs the full "
                        "install (pip install 'studentpack[cpu]')") from exc  # fmt: skip
    return adapter.load_tokenizer(path)
