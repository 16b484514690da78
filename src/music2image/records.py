"""The typed record of one finished image: what the journal holds, the log lists, the summary counts and the gallery
shows. Built from untrusted journal lines by `ImageRecord.from_journal`, which checks every field's type."""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass

from .plan import EXTENSIONS, Job, image_relpath


def is_int(value, low: int = 0, high: int = 2**63) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def optional(check):
    return lambda value: value is None or check(value)


# What each field of an image record must be (its kind, checked in `_valid_fields`); a record that breaks one is
# skipped (and counted). Checked by kind with plain `type() is` tests: 100k records validate in well under a second.
_IMAGE_FIELDS = {
    "sample_idx": "id", "prompt_id": "id", "mode": "text", "temperature": "number?", "visual_prompt": "text",
    "seed": "seed", "recipe_key": "text", "status": "status", "image_path": "text?", "sha256": "text?",
    "error": "text?", "error_type": "text?", "seconds": "number?", "notes": "texts", "token_count": "count?",
    "prompt_encoding": "text?", "vae_decode_dtype": "text?", "offload": "text?", "vae_tiling": "bool?",
    "device": "text?", "run": "count?", "saved": "bool?", "size": "count?", "mtime_ns": "count?",
}
_BY_KIND = {kind: tuple(n for n, k in _IMAGE_FIELDS.items() if k == kind) for kind in set(_IMAGE_FIELDS.values())}
_SUFFIXES = tuple(EXTENSIONS.values())


def _valid_fields(get) -> bool:
    for name in _BY_KIND["id"]:
        value = get(name)
        if type(value) is not int or not 0 <= value <= 999_999:
            return False
    seed = get("seed")
    if type(seed) is not int or not 0 <= seed <= 2**32 - 1 or get("status") not in ("success", "failed"):
        return False
    for name in _BY_KIND["text"]:
        if type(get(name)) is not str:
            return False
    for name in _BY_KIND["text?"]:
        value = get(name)
        if value is not None and type(value) is not str:
            return False
    for name in _BY_KIND["count?"]:
        value = get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= 2**63):
            return False
    for name in _BY_KIND["number?"]:
        value = get(name)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            return False
    for name in _BY_KIND["bool?"]:
        value = get(name)
        if value is not None and type(value) is not bool:
            return False
    image_index = get("image_index", 0)  # absent in journals from before --images-per-prompt
    if type(image_index) is not int or not 0 <= image_index <= 999:
        return False
    notes = get("notes", [])
    return type(notes) is list and all(type(note) is str for note in notes)


@dataclass(frozen=True, slots=True)  # slots: a 100k-image journal is 100k of these in memory
class ImageRecord:
    """One finished image, made or failed: what the journal holds, the log lists, the summary counts."""

    sample_idx: int
    prompt_id: int
    mode: str
    temperature: float | None
    visual_prompt: str
    seed: int
    recipe_key: str
    status: str  # "success" | "failed"
    image_path: str | None = None  # relative to the output folder; None when failed or with --no-save
    sha256: str | None = None
    error: str | None = None
    error_type: str | None = None
    seconds: float | None = None
    notes: tuple[str, ...] = ()
    token_count: int | None = None
    prompt_encoding: str | None = None  # "full" (fits 77 tokens), "chunked" or "truncated"
    vae_decode_dtype: str | None = None
    offload: str | None = None
    vae_tiling: bool | None = None
    device: str | None = None
    run: int | None = None  # the run that made it (see RunRecord.run); None in journals from before 0.2
    saved: bool | None = None  # False: made by a --no-save run, so there is no file to keep
    image_index: int = 0  # k of --images-per-prompt K (0 in journals from before the flag)
    # The file's size and mtime (ns) right after it was written: resume trusts a file that still has both
    # (None in journals from before 0.3, whose files are hashed instead).
    size: int | None = None
    mtime_ns: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.sample_idx, self.prompt_id, self.image_index)

    @property
    def has_file(self) -> bool:
        return self.ok and self.image_path is not None and self.sha256 is not None

    @property
    def job(self) -> Job:
        return Job(self.sample_idx, self.prompt_id, self.mode, self.temperature, self.visual_prompt, self.seed,
                   self.image_path or "", self.recipe_key, self.image_index)

    @classmethod
    def made(cls, job: Job, **outcome) -> "ImageRecord":
        return cls(sample_idx=job.sample_idx, prompt_id=job.prompt_id, mode=job.mode, temperature=job.temperature,
                   visual_prompt=job.visual_prompt, seed=job.seed, recipe_key=job.recipe_key,
                   image_index=job.image_index, **outcome)

    @classmethod
    def from_journal(cls, record: dict) -> "ImageRecord | None":
        """The record, or None when a field is missing or of the wrong type (a hostile or damaged journal)."""
        get = record.get
        if not _valid_fields(get):
            return None
        path = get("image_path")
        if get("status") == "success" and path is not None and get("sha256") is None:
            return None
        # A path is only ever the one its ids give (nothing in a journal may point a reader elsewhere).
        if path is not None:
            stem = image_relpath(get("sample_idx"), get("prompt_id"), "png", get("image_index", 0)).removesuffix(".png")
            if not (path.startswith(stem) and path[len(stem):] in _SUFFIXES):
                return None
        # Positionally, in field order (a dict of 25 values and cls(**values) was half of reading 100k records);
        # the few short texts every record repeats (status, mode, device, ...) shared, not one copy per record.
        values = [get(name) for name in _FIELD_ORDER]
        for index in _SHARED_TEXTS:
            value = values[index]
            if value is not None:
                values[index] = sys.intern(value)
        values[_NOTES] = tuple(get("notes", ()))
        values[_IMAGE_INDEX] = get("image_index", 0)
        return cls(*values)

    def to_journal(self, **stamp) -> dict:
        return {"type": "image", **dataclasses.asdict(self), "notes": list(self.notes), **stamp}

    def log_entry(self, with_image_index: bool = False) -> dict:
        """The image's entry in image_generation_log.json (the seed's keys first, then ours; `image_index` when
        the run made several images per prompt)."""
        entry = {
            "sample_idx": self.sample_idx,
            "prompt_id": self.prompt_id,
            "mode": self.mode,
            "temperature": self.temperature,
            "visual_prompt": self.visual_prompt,
            "image_path": self.image_path,
            "status": self.status,
            "seed": self.seed,
            "error": self.error,
            "error_type": self.error_type,
            "generation_time": None if self.seconds is None else round(self.seconds, 3),
            "recipe_key": self.recipe_key,
            "token_count": self.token_count,
            "prompt_encoding": self.prompt_encoding,
        }
        if with_image_index:
            entry["image_index"] = self.image_index
        return entry


_FIELD_ORDER = tuple(field.name for field in dataclasses.fields(ImageRecord))
assert set(_FIELD_ORDER) == set(_IMAGE_FIELDS) | {"image_index"}  # every field is checked by `_valid_fields`
_NOTES, _IMAGE_INDEX = _FIELD_ORDER.index("notes"), _FIELD_ORDER.index("image_index")
# Texts from a handful of values (the journal is untrusted, but a text is only shared, never trusted for it).
_SHARED_TEXTS = tuple(_FIELD_ORDER.index(name) for name in (
    "mode", "status", "prompt_encoding", "vae_decode_dtype", "offload", "device"))
