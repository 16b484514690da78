"""The output folder's log, read as a stranger's file: one validated, typed record per image.

`image_generation_log.json` is ours, but anyone may have edited it: every value is checked for its type here, and an
entry that fails is left out with one warning that says how many and why (the first few), never a traceback.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass as validated_dataclass

from ..errors import Music2ImageError
from ..image_text import terminal_safe, validation_problems
from ..outputs import LOG_NAME
from ..safe_paths import UnsafePathError, relative_parts
from ..untrusted_json import loads as parse_json

log = logging.getLogger("music2image")

SampleIndex = Annotated[StrictInt, Field(ge=0)]
EXAMPLES_IN_WARNINGS = 3


@validated_dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class Entry:
    """One image of the log (a `generated_images[]` entry, validated): a row of the summary, a card of the
    gallery, a tile of a grid."""

    sample_idx: SampleIndex
    prompt_id: SampleIndex
    mode: StrictStr
    visual_prompt: StrictStr
    status: Literal["success", "failed"]
    temperature: StrictFloat | None = None
    seed: StrictInt | None = None
    image_path: StrictStr | None = None  # relative to the output folder
    error: StrictStr | None = None
    image_index: SampleIndex = 0  # k of --images-per-prompt K; absent (0) when the run made one image per prompt

    @field_validator("image_path")
    @classmethod
    def _inside_the_folder(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                relative_parts(path)
            except UnsafePathError:
                raise ValueError("must be a path inside the output folder") from None
        return path

    @property
    def ok(self) -> bool:
        return self.status == "success" and self.image_path is not None

    @property
    def label(self) -> str:
        temperature = "" if self.temperature is None else f" T={self.temperature:g}"
        return f"#{self.prompt_id} {self.mode}{temperature}"


@validated_dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class SkippedSample:
    """A `skipped_samples[]` entry of the log: a sample whose prompts could not be made."""

    sample_idx: SampleIndex
    reason: StrictStr = ""


@dataclass(frozen=True)
class RunLog:
    """What the viewers read from an output folder's log."""

    output_dir: Path
    metadata: dict  # as written; its values are untrusted: read them with .get and show them escaped
    entries: list[Entry]
    skipped_samples: list[SkippedSample]
    invalid_entries: int  # entries left out because they did not validate


def read_json_file(path: str | os.PathLike) -> dict:
    """A JSON object from one of our files, or one message saying why not (Music2ImageError, exit 2)."""
    path = Path(path)
    try:
        document = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Music2ImageError(
            f"{path.parent}: no {path.name} here; is this a music2image output folder? "
            "(run `music2image generate` first)"
        ) from None
    except (OSError, ValueError) as exc:
        raise Music2ImageError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(document, dict):
        raise Music2ImageError(f"{path}: not a music2image file (it holds a JSON {type(document).__name__}, "
                               "not an object)")
    return document


_ENTRY = TypeAdapter(Entry)
SKIPPED = TypeAdapter(SkippedSample)


def validated(items, adapter: TypeAdapter, where: str, source: Path) -> tuple[list, int]:
    """The items of a JSON list that validate, and how many did not; one warning for all those that did not."""
    if not isinstance(items, list):
        if items is not None:
            log.warning("%s: %s is not a list; ignored", source, where)
        return [], 0
    good, problems, bad = [], [], 0
    for index, item in enumerate(items):
        try:
            good.append(adapter.validate_python(item))
        except ValidationError as exc:
            bad += 1
            if len(problems) < EXAMPLES_IN_WARNINGS:
                problems.append(validation_problems(exc, f"{where}[{index}]")[0])
    if bad:
        more = f" (and {bad - len(problems)} more)" if bad > len(problems) else ""
        log.warning("%s: %d of %d %s entries are not valid and are left out: %s%s", source, bad, len(items), where,
                    terminal_safe("; ".join(problems)), more)
    return good, bad


def read_log(output_dir: str | os.PathLike) -> RunLog:
    output_dir = Path(output_dir)
    return parse_log(read_json_file(output_dir / LOG_NAME), output_dir)


def refuse_without_files(run_log: RunLog, what: str) -> None:
    """One message (exit 2), before anything is drawn, for a folder whose images were all made by --no-save runs: a
    grid or gallery of them is every tile "missing" (what `grid` and `gallery` wrote before)."""
    made = [entry for entry in run_log.entries if entry.status == "success"]
    if made and not any(entry.image_path is not None for entry in made):
        raise Music2ImageError(f"{run_log.output_dir}: its {len(made)} images were made with --no-save, so there is "
                               f"no file for {what}: generate them without --no-save")


def parse_log(document: dict, output_dir: Path) -> RunLog:
    source = output_dir / LOG_NAME
    entries, invalid = validated(document.get("generated_images"), _ENTRY, "generated_images", source)
    skipped, _ = validated(document.get("skipped_samples"), SKIPPED, "skipped_samples", source)
    metadata = document.get("metadata")
    return RunLog(output_dir, metadata if isinstance(metadata, dict) else {}, entries, skipped, invalid)


def load_entries(output_dir: str | os.PathLike) -> tuple[dict, list[Entry]]:
    """The log as written, and its valid entries."""
    output_dir = Path(output_dir)
    document = read_json_file(output_dir / LOG_NAME)
    return document, parse_log(document, output_dir).entries


def by_sample(entries: list[Entry]) -> dict[int, list[Entry]]:
    """Entries grouped by sample, samples in ascending order, each sample's images in prompt order (a prompt's
    images, with --images-per-prompt K, in k order)."""
    samples: dict[int, list[Entry]] = {}
    for entry in entries:
        samples.setdefault(entry.sample_idx, []).append(entry)
    return {idx: sorted(samples[idx], key=lambda e: (e.prompt_id, e.image_index)) for idx in sorted(samples)}


def several_per_prompt(entries: list[Entry]) -> bool:
    """Whether the folder holds several images per prompt (an entry with k > 0): the reports then show each
    prompt's images as one group; with one image per prompt they look as they always did."""
    return any(entry.image_index > 0 for entry in entries)


def prompt_blocks(entries: list[Entry]) -> list[list[Entry]]:
    """Consecutive entries of one prompt (same prompt_id, mode, temperature and text; by_sample put them in k order) as
    one block each. An edited log whose images of one prompt_id disagree on the text gets one block per text, so
    the text shown once above a block is true of every image in it."""
    blocks: list[list[Entry]] = []
    for entry in entries:
        first = blocks[-1][0] if blocks else None
        if first is not None and _prompt_of(first) == _prompt_of(entry):
            blocks[-1].append(entry)
        else:
            blocks.append([entry])
    return blocks


def _prompt_of(entry: Entry) -> tuple:
    return entry.prompt_id, entry.mode, entry.temperature, entry.visual_prompt
