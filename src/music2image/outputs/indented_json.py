"""`json.dumps(document, indent=2, ensure_ascii=False)`, the same bytes, at the speed of the C encoder for the shapes
our logs are made of.

With `indent` set, the standard library encodes in pure Python (`json.encoder._make_iterencode`): one generator step
per value, ~1 s for a 100k-image log (69 MB) on a 2-core Xeon, the largest part of re-running a finished folder
(docs/PERFORMANCE.md, "Resume at scale"). The C encoder (`c_make_encoder`) is used only without `indent`, but
it takes any item separator: a container whose values are all plain scalars, at depth d, is laid out by the indented
encoder as `{` NEWLINE+INDENT(d+1) `"k": v` `,`NEWLINE+INDENT(d+1) ... NEWLINE+INDENT(d) `}`, which is the C
encoder's output with the item separator `,`NEWLINE+INDENT(d+1), once its brackets are opened up. Keys, strings,
ints and floats (NaN, Infinity) go through the same C functions either way (CPython 3.11 `Modules/_json.c`,
`encoder_listencode_dict`: the same key rules as `_iterencode_dict`).

Anything else — a subclass of a JSON type, a tuple, an object only `default` knows — is handed whole to
`json.dumps(..., indent=2)` and re-indented to its depth (the indented layout puts INDENT × depth after every
newline it writes, and strings never hold a raw newline, so adding INDENT × d after each newline is exactly that
value encoded d levels down). tests/test_indented_json.py compares the two byte for byte on many shapes.

One addition: a generator (e.g. of log entries) stands for the list it yields, so a 100k-entry log need not exist
as a list of dicts before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import GeneratorType

INDENT = "  "
# Exact types only: a subclass may encode differently (its own __repr__ is not used, but its type is not ours to
# guess), so it takes the standard library's path.
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


class _Levels:
    """Per depth: the C encoder that writes a flat container's items separated as the indented layout does."""

    def __init__(self):
        self._flat: list = []

    def flat(self, depth: int):
        while len(self._flat) <= depth:
            inner = "\n" + INDENT * (len(self._flat) + 1)
            self._flat.append(json.JSONEncoder(ensure_ascii=False, separators=("," + inner, ": ")).encode)
        return self._flat[depth]


def _is_flat(values) -> bool:
    return _SCALAR_TYPES.issuperset(map(type, values))


def _encode(value, depth: int, levels: _Levels, path: set) -> Iterator[str]:
    kind = type(value)
    if kind in _SCALAR_TYPES:
        yield levels.flat(depth)(value)
    elif kind is dict:
        if not value:
            yield "{}"
        elif _is_flat(value.values()):
            text = levels.flat(depth)(value)
            yield f"{{\n{INDENT * (depth + 1)}{text[1:-1]}\n{INDENT * depth}}}"
        elif all(type(key) is str for key in value):
            yield from _container(value, depth, levels, path, "{", "}", value.items())
        else:  # int, float, bool or None keys: the standard library's key rules, whole
            yield _standard(value, depth)
    elif kind is list:
        if not value:
            yield "[]"
        elif _is_flat(value):
            text = levels.flat(depth)(value)
            yield f"[\n{INDENT * (depth + 1)}{text[1:-1]}\n{INDENT * depth}]"
        else:
            yield from _container(value, depth, levels, path, "[", "]", None)
    elif kind is GeneratorType:
        yield from _container(value, depth, levels, path, "[", "]", None)
    else:
        yield _standard(value, depth)


def _container(value, depth: int, levels: _Levels, path: set, opening: str, closing: str, items) -> Iterator[str]:
    """A dict (`items` its items) or a list/generator, laid out item by item as `_make_iterencode` does."""
    marker = id(value)
    if marker in path:
        raise ValueError("Circular reference detected")
    path.add(marker)
    newline = "\n" + INDENT * (depth + 1)
    first = True
    if items is None:
        for item in value:
            yield (opening if first else ",") + newline
            first = False
            yield from _encode(item, depth + 1, levels, path)
    else:
        for key, item in items:
            yield f"{opening if first else ','}{newline}{levels.flat(0)(key)}: "
            first = False
            yield from _encode(item, depth + 1, levels, path)
    path.discard(marker)
    # A generator that yielded nothing is an empty list.
    yield opening + closing if first else "\n" + INDENT * depth + closing


def _standard(value, depth: int) -> str:
    return json.dumps(value, indent=len(INDENT), ensure_ascii=False).replace("\n", "\n" + INDENT * depth)


def iterencode(document) -> Iterator[str]:
    """Pieces of `json.dumps(document, indent=2, ensure_ascii=False)` (generators encoded as lists)."""
    return _encode(document, 0, _Levels(), set())
