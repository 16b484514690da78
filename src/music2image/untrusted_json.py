"""JSON from files that may be hostile (a log, a journal, a PNG's text, a cache entry): every way its parsing fails
is a ValueError, which each reader already turns into a message or a skipped line."""

from __future__ import annotations

import json


def loads(text: str | bytes, **options):
    """json.loads, except that a document nested deeper than Python's parser follows ("[[[[…" 100,000 deep) raises
    ValueError: json.loads raises RecursionError there, which readers catching ValueError let through as a
    traceback (gallery, grid and evaluate on such a log; generate on such a journal line; show on such a PNG)."""
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
