"""JSON from files that may be hostile (a log, a journal, a PNG's text, a cache entry): every way its parsing fails
is a ValueError, which each reader already turns into a message or a skipped line, and every text it gives can be
written as UTF-8."""

from __future__ import annotations

import json
import re

# JSON may escape half of a UTF-16 surrogate pair alone ("\ud800"), which json.loads turns into a str that has no
# UTF-8: writing it (the gallery's HTML, the log, a hash of a prompt for evaluate's cache) raised
# UnicodeEncodeError, a traceback. Such an escape is the only way a surrogate gets into text decoded strictly.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_BYTES = re.compile(_SURROGATE_ESCAPE.pattern.encode())
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def loads(text: str | bytes, **options):
    """json.loads, except that a document nested deeper than Python's parser follows ("[[[[…" 100,000 deep) raises
    ValueError (json.loads raises RecursionError there, which readers catching ValueError let through as a
    traceback: gallery, grid and evaluate on such a log, generate on such a journal line, show on such a PNG), and
    that a lone surrogate in any text, keys included, comes back as U+FFFD (a pair escaped as two halves is one
    character, as json.loads makes it)."""
    try:
        document = json.loads(text, **options)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    pattern = _SURROGATE_ESCAPE_BYTES if isinstance(text, (bytes, bytearray)) else _SURROGATE_ESCAPE
    return _without_surrogates(document) if pattern.search(text) else document


def _without_surrogates(document):
    """The document with every lone surrogate replaced; a loop, not recursion (it is as deep as the parser went)."""
    fixed = _fixed(document)
    stack = [fixed] if isinstance(fixed, (dict, list)) else []
    while stack:
        container = stack.pop()
        items = list(container.items()) if isinstance(container, dict) else list(enumerate(container))
        if isinstance(container, dict):
            container.clear()
        for key, value in items:
            value = _fixed(value)
            container[_fixed(key) if isinstance(key, str) else key] = value
            if isinstance(value, (dict, list)):
                stack.append(value)
    return fixed


def _fixed(value):
    return without_lone_surrogates(value) if isinstance(value, str) else value


def without_lone_surrogates(text: str) -> str:
    """TEXT with each lone surrogate (no UTF-8 for it) as U+FFFD: for text parsed by someone else's JSON reader (an
    LLM client's), before it is written anywhere."""
    return _SURROGATE.sub(REPLACEMENT, text)
