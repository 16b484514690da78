"""outputs/indented_json.py writes exactly `json.dumps(document, indent=2, ensure_ascii=False)`: users diff the log and
summary, and tools read their keys. Compared byte for byte on random documents of every shape we can think of."""

import enum
import json
import math
import random
from collections import OrderedDict

import pytest

from music2image.outputs.indented_json import iterencode


def standard(document) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def ours(document) -> str:
    return "".join(iterencode(document))


class Colour(enum.IntEnum):
    RED = 1


class Label(str, enum.Enum):
    CONVERGENT = "convergent"


class Text(str):
    pass


STRINGS = ["", "a", "ünïcode ✓", "emoji 🎵🎹", 'quote " and \\ backslash', "new\nline\ttab\r", "\x00\x1f\x7f\x9f",
           "\u2028\u2029", "\ud800", "</script>", " " * 3, "{\n  \"fake\": 1\n}", "日本語のプロンプト"]
FLOATS = [0.0, -0.0, 1e-7, 1e-300, 5e-324, 1e16, 1e22, 0.1 + 0.2, -2.5, 1.0, 3.14159265358979, 1.7976931348623157e308,
          math.nan, math.inf, -math.inf, 123456789.123]
INTS = [0, -1, 1, 2**31, 2**63, -(2**64), 10**30, 999_999]


def scalar(rng: random.Random):
    pick = rng.randrange(9)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice(INTS)
    if pick == 3:
        return rng.choice(FLOATS)
    if pick == 4:  # subclasses of JSON types take the standard library's path
        return rng.choice([Colour.RED, Label.CONVERGENT, Text("sub ✓")])
    return rng.choice(STRINGS)


def key(rng: random.Random):
    # Mostly strings; sometimes the other keys json accepts (int, float, bool, None), converted by its rules.
    return rng.choice(STRINGS) if rng.random() < 0.9 else rng.choice([1, -7, 2.5, math.nan, True, False, None])


def value(rng: random.Random, depth: int):
    if depth >= 4 or rng.random() < 0.35:
        return scalar(rng)
    size = rng.choice([0, 1, 2, 5])
    pick = rng.randrange(5)
    if pick == 0:
        return [value(rng, depth + 1) for _ in range(size)]
    if pick == 1:
        return tuple(value(rng, depth + 1) for _ in range(size))
    if pick == 2:
        return OrderedDict((key(rng), value(rng, depth + 1)) for _ in range(size))
    return {key(rng): value(rng, depth + 1) for _ in range(size)}


@pytest.mark.parametrize("seed", range(400))
def test_random_documents_encode_to_the_same_text_as_json_dumps(seed):
    document = value(random.Random(seed), 0)
    assert ours(document) == standard(document)


@pytest.mark.parametrize("document", [
    {}, [], {"a": {}}, {"a": []}, [[]], [{}], "top level text", 1.5, math.nan, None, True, 7,
    [1, [2, [3, [4, []]]]], {"k": [{"a": 1}, {"b": [1, 2, {"c": None}]}, [], {}]},
    {"entries": [{"sample_idx": i, "prompt": f"sea ✓ \"{i}\"\n", "t": i / 7, "ok": i % 2 == 0, "e": None}
                 for i in range(50)]},
    {"by_sample": {str(i): {"convergent": i, "divergent": 2, "failed": 0} for i in range(30)}},
])
def test_shapes_of_our_logs_and_edge_cases(document):
    assert ours(document) == standard(document)


def test_a_generator_stands_for_the_list_it_yields():
    entries = [{"sample_idx": i, "mode": "convergent"} for i in range(3)]
    document = {"metadata": {"n": 3}, "generated_images": (entry for entry in entries), "empty": (x for x in ())}
    assert ours(document) == standard({"metadata": {"n": 3}, "generated_images": entries, "empty": []})


def test_what_json_refuses_is_refused():
    with pytest.raises(TypeError, match="not JSON serializable"):
        ours({"a": [1, {"b": {1, 2}}]})
    with pytest.raises(TypeError, match="not JSON serializable"):
        ours({"a": [1, {"b": object()}]})
    looped: dict = {"a": [1]}
    looped["a"].append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        ours(looped)
    with pytest.raises(TypeError):
        ours({(1, 2): "tuple key"})


def test_a_value_shared_twice_is_not_a_loop():
    shared = {"x": [1, 2]}
    document = {"a": shared, "b": [shared, shared]}
    assert ours(document) == standard(document)
