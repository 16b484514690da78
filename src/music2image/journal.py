"""Resume in one place: the append-only journal, its typed records, the latest record of each image, whether an
image is finished, and the refusal to mix recipes in one folder.

The journal is JSON lines, one fsync'd record per finished image (and one per run), in `generation_journal.jsonl`
and, under `accelerate launch`, one shard per process (`generation_journal.R.jsonl`). Every line is untrusted:
a torn, garbled or ill-typed line is passed over and counted, never a crash. Records are ordered by the run they
belong to and then by where they stand in their shard (the order they were written), never by wall-clock stamps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OutputDirError
from .outputs.files import DEFAULT_FILES, Files, open_no_follow
from .plan import Job

log = logging.getLogger("music2image")

JOURNAL_NAME = "generation_journal.jsonl"
JOURNAL_GLOB = "generation_journal*.jsonl"


def shard_name(rank: int) -> str:
    return JOURNAL_NAME if rank == 0 else JOURNAL_NAME.replace(".jsonl", f".{rank}.jsonl")


class Journal:
    """Append-only JSON lines; each record is flushed and fsync'd (through `files`) before `append` returns."""

    def __init__(self, path: Path, files: Files = DEFAULT_FILES):
        self.path = Path(path)
        self.files = files
        self._lock = threading.Lock()
        self._handle = None

    def _open(self):
        if self._handle is None:
            # O_NOFOLLOW: a journal (or shard) planted as a link to a file elsewhere is refused, not appended to.
            fd = open_no_follow(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            self._handle = os.fdopen(fd, "ab")
            # A kill mid-append can leave a torn last line: end it, so the next record starts on its own line.
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                self._handle.write(b"\n")
        return self._handle

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
        with self._lock:
            self.files.append_line(self._open(), line)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    @staticmethod
    def read(path: Path) -> list[dict]:
        """Every complete JSON object line; a torn or garbled line (from a kill mid-write) is passed over."""
        try:
            return _parse_lines(Path(path).read_bytes())
        except FileNotFoundError:
            return []

    @staticmethod
    def read_from(path: Path, offset: int) -> tuple[list[dict], int]:
        """The records of whole lines appended since byte `offset`, and the offset to read from next time (a line
        still being written is left for then). For following a journal another process is writing."""
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        return _parse_lines(data[:end]), offset + end


def _parse_lines(data: bytes) -> list[dict]:
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# Typed records ------------------------------------------------------------------------------------------------
def _is_int(value, low: int = 0, high: int = 2**63) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optional(check):
    return lambda value: value is None or check(value)


_is_text = lambda value: isinstance(value, str)  # noqa: E731
# What each field of an image record must be; a record that breaks one is skipped (and counted).
_IMAGE_FIELDS = {
    "sample_idx": lambda v: _is_int(v, 0, 999_999),
    "prompt_id": lambda v: _is_int(v, 0, 999_999),
    "mode": _is_text,
    "temperature": _optional(_is_number),
    "visual_prompt": _is_text,
    "seed": lambda v: _is_int(v, 0, 2**32 - 1),
    "recipe_key": _is_text,
    "status": lambda v: v in ("success", "failed"),
    "image_path": _optional(_is_text),
    "sha256": _optional(_is_text),
    "error": _optional(_is_text),
    "error_type": _optional(_is_text),
    "seconds": _optional(_is_number),
    "notes": lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
    "token_count": _optional(lambda v: _is_int(v)),
    "prompt_encoding": _optional(_is_text),
    "vae_decode_dtype": _optional(_is_text),
    "offload": _optional(_is_text),
    "vae_tiling": _optional(lambda v: isinstance(v, bool)),
    "device": _optional(_is_text),
    "run": _optional(lambda v: _is_int(v)),
    "saved": _optional(lambda v: isinstance(v, bool)),
}


@dataclass(frozen=True)
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

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def key(self) -> tuple[int, int]:
        return (self.sample_idx, self.prompt_id)

    @property
    def has_file(self) -> bool:
        return self.ok and self.image_path is not None and self.sha256 is not None

    @property
    def job(self) -> Job:
        return Job(self.sample_idx, self.prompt_id, self.mode, self.temperature, self.visual_prompt, self.seed,
                   self.image_path or "", self.recipe_key)

    @classmethod
    def made(cls, job: Job, **outcome) -> "ImageRecord":
        return cls(sample_idx=job.sample_idx, prompt_id=job.prompt_id, mode=job.mode, temperature=job.temperature,
                   visual_prompt=job.visual_prompt, seed=job.seed, recipe_key=job.recipe_key, **outcome)

    @classmethod
    def from_journal(cls, record: dict) -> "ImageRecord | None":
        """The record, or None when a field is missing or of the wrong type (a hostile or damaged journal)."""
        values = {}
        for name, valid in _IMAGE_FIELDS.items():
            value = record.get(name, [] if name == "notes" else None)
            if not valid(value):
                return None
            values[name] = value
        if values["status"] == "success" and values["image_path"] is not None and values["sha256"] is None:
            return None
        values["notes"] = tuple(values["notes"])
        return cls(**values)

    def to_journal(self, **stamp) -> dict:
        return {"type": "image", **dataclasses.asdict(self), "notes": list(self.notes), **stamp}

    def log_entry(self) -> dict:
        """The image's entry in image_generation_log.json (the seed's keys first, then ours)."""
        return {
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


@dataclass(frozen=True)
class JournalState:
    """What an output folder's journal says, read once at the start of a run."""

    images: dict[tuple[int, int], ImageRecord]  # the latest record of each image (--no-save records left out)
    recipe: dict | None  # the recipe of the latest run that wrote a record
    last_run: int  # the highest run number seen (0: none)
    has_images: bool  # any successful image record at all
    skipped: dict[str, int] = field(default_factory=dict)  # shard file → lines passed over as invalid
    current: dict[tuple[int, int], ImageRecord] = field(default_factory=dict)  # records of `current_run`


def _read_all(output_dir: Path) -> list[tuple[str, dict]]:
    """(shard name, record) for every record of the journal and its shards, oldest first: records of older
    journals (no `run` number) by the time stamps they were written with; then every record that has a run
    number, by run and by its place in its shard (the order it was written; clocks may step or differ)."""
    legacy, numbered = [], []
    for path in sorted(Path(output_dir).glob(JOURNAL_GLOB)):
        for place, record in enumerate(Journal.read(path)):
            if _is_int(record.get("run")):
                numbered.append(((record["run"], path.name, place), path.name, record))
            else:
                stamp = record.get("t") if _is_number(record.get("t")) else 0.0
                legacy.append(((stamp, len(legacy)), path.name, record))
    legacy.sort(key=lambda item: item[0])
    numbered.sort(key=lambda item: item[0])
    return [(shard, record) for _key, shard, record in legacy + numbered]


def read_journal_dir(output_dir: Path) -> list[dict]:
    """Every record of the journal and its shards, oldest first (see `_read_all`)."""
    return [record for _shard, record in _read_all(output_dir)]


def read_state(output_dir: Path, current_run: int | None = None, warn: bool = True) -> JournalState:
    """The folder's journal, validated and in write order. `current_run`: also collect that run's records apart
    (--no-save ones too), for the report of the run that is writing them."""
    images: dict[tuple[int, int], ImageRecord] = {}
    current: dict[tuple[int, int], ImageRecord] = {}
    recipe, last_run, has_images = None, 0, False
    skipped: dict[str, int] = {}
    for shard, raw in _read_all(output_dir):
        kind = raw.get("type")
        if kind == "run":
            if isinstance(raw.get("recipe"), dict):
                recipe = raw["recipe"]
            else:
                skipped[shard] = skipped.get(shard, 0) + 1
            if _is_int(raw.get("run")):
                last_run = max(last_run, raw["run"])
        elif kind == "image":
            record = ImageRecord.from_journal(raw)
            if record is None:
                skipped[shard] = skipped.get(shard, 0) + 1
                continue
            has_images = has_images or record.ok
            if record.run is not None:
                last_run = max(last_run, record.run)
                if record.run == current_run:
                    current[record.key] = record
            if record.saved is False or (record.saved is None and record.ok and record.image_path is None):
                continue  # a --no-save run's record: the files of earlier runs are still there to keep
            images[record.key] = record
    if skipped and warn:
        where = ", ".join(f"{count} in {name}" for name, count in sorted(skipped.items()))
        log.warning("%s: passed over %d invalid journal record(s) (%s)", output_dir, sum(skipped.values()), where)
    return JournalState(images, recipe, last_run, has_images, skipped, current)


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def is_finished(job: Job, record: ImageRecord | None, output_dir: Path) -> bool:
    """The latest record is a success with the same recipe, and its file is still there, byte for byte (a
    missing or corrupt image is made again)."""
    if record is None or not record.has_file or record.recipe_key != job.recipe_key:
        return False
    if record.image_path != job.image_path:
        return False
    return file_sha256(Path(output_dir) / job.image_path) == record.sha256


def refuse_other_recipe(output_dir: Path, state: JournalState, recipe: dict) -> None:
    """A folder holds one recipe's images: resuming with another would mix them. Raise with every difference."""
    previous = state.recipe
    if previous is None or not state.has_images:
        return
    differences = [
        f"  {key}: {json.dumps(previous.get(key))} there, {json.dumps(recipe.get(key))} now"
        for key in sorted(set(previous) | set(recipe))
        if previous.get(key) != recipe.get(key)  # a key an older version did not write reads as null
    ]
    if not differences:
        return
    raise OutputDirError(
        f"{output_dir}: holds images made with another recipe:\n"
        + "\n".join(differences)
        + "\nRe-run with the same settings to resume, add --overwrite to regenerate everything here, "
        "or choose another --output-dir."
    )
