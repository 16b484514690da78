"""The visual-prompts file: schema, loading, validation of the whole file at once, and selection.

The audio stage writes (unknown keys anywhere are ignored):

    {"metadata": {...},
     "samples": [{"sample_idx": 0, "prompts": [{"prompt_id": 0, "mode": "convergent",
                                                "temperature": 0.4, "visual_prompt": "..."}]},
                 {"sample_idx": 7, "error": "audio decode failed", "prompts": []}]}
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import PromptFileError

DEFAULT_PROMPTS_FILE = "generated_prompts/visual_prompts_complete.json"
MAX_ID = 999_999
# Real prompts are 10-300 words; anything far beyond that is a broken file, not a prompt.
MAX_PROMPT_CHARS = 20_000
MAX_LABEL_CHARS = 64
MAX_FILE_BYTES = 512 * 1024 * 1024

HOW_TO_CREATE = (
    "Create it first: run the prompt generator (`music2image prompts AUDIO... --output FILE`), "
    "or point --prompts-file at an existing visual-prompts JSON (see examples/visual_prompts.json)."
)


# Unicode's Cc category is exactly U+0000-U+001F and U+007F-U+009F; a regex scans 100k prompts in C, where a
# per-character unicodedata.category() loop took 75% of planning them (benchmarks/resume_scale.py).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# JSON may spell half of a UTF-16 pair alone ("\ud800"): Python reads it as a lone surrogate, which is no character
# and cannot be written as UTF-8 (a recipe key, a PNG text chunk, the log): it crashed planning with a traceback.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_control_chars(text: str, allow_whitespace: bool = False) -> bool:
    """Any control character (but newline, tab and carriage return, with `allow_whitespace`)."""
    return (_CONTROL_BUT_WHITESPACE if allow_whitespace else _CONTROL).search(text) is not None


def _check_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise PydanticCustomError("id", f"must be an integer from 0 to {MAX_ID}")
    return value


def _check_prompt_text(value: Any) -> str:
    if not isinstance(value, str) or not value or value.isspace():  # (not value.strip(), without copying it)
        raise PydanticCustomError("prompt", "must be a non-empty string")
    if len(value) > MAX_PROMPT_CHARS:
        raise PydanticCustomError("prompt", f"is {len(value)} characters long; the limit is {MAX_PROMPT_CHARS}")
    if _has_control_chars(value, allow_whitespace=True):
        raise PydanticCustomError("prompt", "contains control characters")
    if _SURROGATE.search(value):
        raise PydanticCustomError("prompt", "contains half of a UTF-16 surrogate pair (e.g. \\ud800), which is no text")
    return value


def _check_label(value: Any) -> str:
    # Labels end up in summaries, grid captions and the gallery's filter, never in a path;
    # still, a label that looks like a path or carries control characters is a broken file.
    if not isinstance(value, str) or not value.strip():
        raise PydanticCustomError("label", "must be a non-empty string (e.g. \"convergent\")")
    if (len(value) > MAX_LABEL_CHARS or _has_control_chars(value) or _SURROGATE.search(value) or "/" in value
            or "\\" in value):
        raise PydanticCustomError(
            "label", f"must be a short label (at most {MAX_LABEL_CHARS} characters, no slashes, control characters or "
            "surrogates)"
        )
    return value


def _check_temperature(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PydanticCustomError("temperature", "must be a finite number or null")
    return float(value)


SampleIdx = Annotated[int, BeforeValidator(_check_id)]
PromptText = Annotated[str, BeforeValidator(_check_prompt_text)]
Label = Annotated[str, BeforeValidator(_check_label)]
Temperature = Annotated[float | None, BeforeValidator(_check_temperature)]


class PromptEntry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_id: SampleIdx
    mode: Label
    temperature: Temperature = None
    visual_prompt: PromptText


class Sample(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sample_idx: SampleIdx
    error: str | None = None
    prompts: list[PromptEntry] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _errored_samples_carry_no_prompts(cls, data: Any) -> Any:
        # A sample the audio stage could not analyse is skipped whole; whatever it left in
        # "prompts" is not ours to judge. Its error may be any JSON value: keep it as text.
        if isinstance(data, dict) and "error" in data:
            error = data["error"]
            text = error if isinstance(error, str) else json.dumps(error)
            return {**data, "error": text or "error", "prompts": []}
        return data


class PromptsFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    metadata: dict[str, Any] = Field(default_factory=dict)
    samples: list[Sample]


@dataclass(frozen=True, slots=True)  # slots: a 100k-prompt selection is 100k of these (~5 MB less)
class SelectedPrompt:
    """One prompt chosen for generation, with the sample it belongs to."""

    sample_idx: int
    prompt_id: int
    mode: str
    temperature: float | None
    visual_prompt: str


@dataclass(frozen=True)
class SkippedSample:
    sample_idx: int
    reason: str


@dataclass(frozen=True)
class Selection:
    prompts: list[SelectedPrompt]
    skipped_samples: list[SkippedSample]


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    # Never echo raw control characters (terminal escapes) back to the user, nor lone surrogates (no UTF-8 for them:
    # printing the message would fail).
    text = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


_PLAIN_MESSAGES = {
    "missing": "is required",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "string_type": "must be a string",
}


def _describe(error: dict) -> str:
    path = _json_path(error["loc"])
    if error["type"] == "missing":
        return f"{path}: is required"
    message = _PLAIN_MESSAGES.get(error["type"], error["msg"])
    return f"{path}: {message}, got {_show(error['input'])}"


def _duplicate_problems(raw: dict) -> list[str]:
    """(sample_idx, prompt_id) must be unique: one image file each. Checked on the raw data so that
    duplicates are reported together with every other problem."""
    problems, seen = [], {}
    samples = raw.get("samples")
    if not isinstance(samples, list):
        return problems
    for s_pos, sample in enumerate(samples):
        if not isinstance(sample, dict) or "error" in sample or not isinstance(sample.get("prompts"), list):
            continue
        try:
            sample_idx = _check_id(sample.get("sample_idx"))
        except PydanticCustomError:
            continue
        for p_pos, prompt in enumerate(sample["prompts"]):
            if not isinstance(prompt, dict):
                continue
            try:
                prompt_id = _check_id(prompt.get("prompt_id"))
            except PydanticCustomError:
                continue
            key = (sample_idx, prompt_id)
            if key in seen:  # (places kept as numbers, written out only for a duplicate)
                first = "samples[{}].prompts[{}]".format(*seen[key])
                problems.append(f"samples[{s_pos}].prompts[{p_pos}]: duplicate (sample_idx, prompt_id) = "
                                f"({sample_idx}, {prompt_id}), first at {first}")
            else:
                seen[key] = (s_pos, p_pos)
    return problems


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use a finite number or null)")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate key {_show(dup)} in one object")
    return result


def parse_prompts_json(data: bytes, source: str) -> dict:
    """Bytes → the raw JSON object, or PromptFileError with one line saying what is wrong and where."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise PromptFileError(source, ["the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptFileError(source, [f"not UTF-8 text: invalid byte {data[exc.start]:#04x} at byte offset {exc.start}"])
    try:
        raw = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise PromptFileError(source, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"])
    except ValueError as exc:
        raise PromptFileError(source, [f"not valid JSON: {exc}"])
    except RecursionError:
        raise PromptFileError(source, ["not valid JSON: nested too deeply"])
    if not isinstance(raw, dict):
        raise PromptFileError(source, [f"(top level): must be an object with a \"samples\" list, got {_show(raw)}"])
    return raw


def validate_prompts(raw: Any, source: str = "prompts") -> PromptsFile:
    """Validate the whole document; every problem is reported at once."""
    if not isinstance(raw, dict):
        raise PromptFileError(source, [f"(top level): must be an object with a \"samples\" list, got {_show(raw)}"])
    problems: list[str] = []
    parsed = None
    try:
        parsed = PromptsFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors())
    problems.extend(_duplicate_problems(raw))
    if problems:
        raise PromptFileError(source, problems)
    return parsed


def load_prompts(source: str | os.PathLike | dict) -> PromptsFile:
    """Load and validate a visual-prompts file (a path) or an already-loaded prompts dict."""
    if isinstance(source, dict):
        return validate_prompts(source, "prompts")
    path = Path(source)
    name = str(source)
    if not path.exists():
        raise PromptFileError(name, ["file not found"], hint=HOW_TO_CREATE)
    if path.is_dir():
        raise PromptFileError(name, ["is a directory, not a JSON file"], hint=HOW_TO_CREATE)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PromptFileError(name, [f"file is {size} bytes; the limit is {MAX_FILE_BYTES}"])
        data = path.read_bytes()
    except OSError as exc:
        raise PromptFileError(name, [f"cannot be read: {exc.strerror or exc}"])
    return validate_prompts(parse_prompts_json(data, name), name)


def select_prompts(
    prompts_file: PromptsFile,
    samples: int | None = None,
    limit: int | None = None,
    sample_range: tuple[int, int] | None = None,
) -> Selection:
    """Apply the selection flags in file order: --sample-range A:B (A ≤ sample_idx < B), then
    --samples N (the first N samples), then --limit N (at most N prompts)."""
    chosen = list(prompts_file.samples)
    if sample_range is not None:
        start, stop = sample_range
        chosen = [s for s in chosen if start <= s.sample_idx < stop]
    if samples is not None:
        chosen = chosen[:samples]
    selected, skipped = [], []
    for sample in chosen:
        if sample.error is not None:
            skipped.append(SkippedSample(sample.sample_idx, f"error from the audio stage: {sample.error}"))
            continue
        if not sample.prompts:
            skipped.append(SkippedSample(sample.sample_idx, "no prompts"))
            continue
        for prompt in sample.prompts:
            selected.append(
                SelectedPrompt(sample.sample_idx, prompt.prompt_id, prompt.mode, prompt.temperature, prompt.visual_prompt)
            )
    if limit is not None:
        selected = selected[:limit]
    return Selection(selected, skipped)


def refuse_empty_selection(source: str, prompts_file: PromptsFile, selection: Selection, samples: int | None = None,
                           limit: int | None = None, sample_range: tuple[int, int] | None = None) -> None:
    """A selection of no sample at all is a mistake (a --sample-range past the file's end, an empty file): say what
    the file holds instead of writing an empty log. (Samples the audio stage could not analyse are selected, and
    reported as skipped: a file of only those is a valid, empty run.)"""
    if selection.prompts or selection.skipped_samples:
        return
    flags = []
    if sample_range is not None:
        flags.append(f"--sample-range {sample_range[0]}:{sample_range[1] if sample_range[1] < 10**9 else ''}")
    if samples is not None:
        flags.append(f"--samples {samples}")
    if limit is not None:
        flags.append(f"--limit {limit}")
    usable = [s for s in prompts_file.samples if s.error is None and s.prompts]
    ids = [s.sample_idx for s in prompts_file.samples]
    holds = f"the file holds {len(ids)} sample(s)"
    if ids:
        holds += f" (sample_idx {min(ids)} to {max(ids)})"
    holds += f", {len(usable)} with prompts, {sum(len(s.prompts) for s in usable)} prompt(s) in all"
    what = f"{' '.join(flags)} selects no sample" if flags else "no sample to generate"
    raise PromptFileError(source, [f"{what}: {holds}"])
