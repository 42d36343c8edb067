"""Unlabelled evaluation texts that ship with studentpack or with Python: no download, nothing to pass."""

from __future__ import annotations

from studentpack.ground.errors import UserError

EMBEDDED_HELDOUT = "embedded:heldout"  # general English no shipped distillation corpus contains
EMBEDDED_DOCSTRINGS = "embedded:docstrings"  # the former default: standard-library prose


def heldout_english() -> list[str]:
    """1,000 sentences of general English written for the project (studentpack/data/heldout, Apache-2.0),
    in no shipped distillation corpus: the label-free measure scores students on text they never saw."""
    from importlib import resources

    file = resources.files("studentpack") / "data" / "heldout" / "english.txt"
    if not file.is_file():
        raise UserError("the held-out English texts are missing from this install (studentpack/data/heldout)")
    return [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def embedded_docstrings(limit: int = 1000) -> list[str]:
    """Prose that every CPython install holds and that no embedded distillation corpus uses: docstrings
    of standard-library modules, classes and functions, cut into paragraphs without doctest or code."""
    import importlib
    import inspect

    paragraphs: list[str] = []
    for name in _DOC_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        names = sorted(getattr(module, "__all__", None) or dir(module))
        objects = [module] + [getattr(module, a, None) for a in names if not a.startswith("_")]
        for obj in objects:
            doc = inspect.getdoc(obj) if callable(obj) or inspect.ismodule(obj) else None
            if doc:
                paragraphs.extend(_prose(doc))
    return list(dict.fromkeys(paragraphs))[:limit]


_DOC_MODULES = (
    "argparse", "asyncio", "calendar", "collections", "csv", "datetime", "decimal", "email", "fractions",
    "functools", "heapq", "http.client", "inspect", "itertools", "json", "logging", "os", "pathlib", "random",
    "shutil", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest",
    "urllib.parse", "zipfile",
)  # fmt: skip


def _prose(doc: str) -> list[str]:
    out: list[str] = []
    for block in doc.split("\n\n"):
        lines = [line.strip() for line in block.splitlines()]
        if any(line.startswith((">>>", "...", "$")) for line in lines) or block.startswith((" ", "\t")):
            continue
        text = " ".join(line for line in lines if line)
        if len(text.split()) >= 6 and text[0].isupper() and text.rstrip()[-1:] in ".:!?":
            out.append(text)
    return out


# the `embedded:` data specs and the texts each names
EMBEDDED_TEXTS = {EMBEDDED_HELDOUT: heldout_english, EMBEDDED_DOCSTRINGS: embedded_docstrings}
