"""Resume in one place: the append-only journal, its typed records, the latest record of each image, whether an
image is finished, and the refusal to mix recipes in one folder.

The journal is JSON lines, one fsync'd record per finished image (and one per run), in `generation_journal.jsonl`
and, under `accelerate launch`, one shard per process (`generation_journal.R.jsonl`). Every line is untrusted:
a torn, garbled or ill-typed line is passed over and counted, never a crash. Records are ordered by the run they
belong to and then by where they stand in their shard (the order they were written), never by wall-clock stamps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OutputDirError
from .outputs.files import DEFAULT_FILES, Files, open_no_follow
from .plan import Job
from .records import ImageRecord, is_int, is_number, optional
from .untrusted_json import loads as parse_json

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
            record = parse_json(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass(frozen=True)
class JournalState:
    """What an output folder's journal says, read once at the start of a run."""

    images: dict[tuple[int, int], ImageRecord]  # the latest record of each image (--no-save records left out)
    recipe: dict | None  # the recipe of the latest run that wrote a record
    last_run: int  # the highest run number seen (0: none)
    has_images: bool  # any successful image record at all
    skipped: dict[str, int] = field(default_factory=dict)  # shard file → lines passed over as invalid
    current: dict[tuple[int, int], ImageRecord] = field(default_factory=dict)  # records of `current_run`
    read_to: dict[str, int] = field(default_factory=dict)  # shard file → bytes read (where `since=` goes on)


def _order(record: dict, shard: str, place: int) -> tuple:
    """Where a record stands in the journal's history: records of older journals (no `run` number) first, by
    the time stamps they were written with; then every record with a run number, by run and by its place in
    its shard (the order it was written: clocks may step back or differ between machines)."""
    if is_int(record.get("run")):
        return (1, record["run"], shard, place)
    stamp = record.get("t")
    return (0, stamp if is_number(stamp) else 0.0, shard, place)


_NOT_AN_OBJECT = object()


def _shard_records(path: Path, start: int = 0, read_to: dict | None = None):
    """(place, record) for each line of one shard from byte `start`, read as a stream (a 100k-record journal is
    never held as text). `record` is a dict, or _NOT_AN_OBJECT for well-formed JSON that is not an object; a torn
    or garbled line (a kill mid-write leaves one) is passed over without a word. `read_to[path.name]` is set to
    the offset after the last line read, ended or not: a last line without a newline (a torn append, a hand edit)
    stays as it is, for the next append ends it with a newline alone (Journal._open) — a reader going on from
    there passes over that newline instead of reading the line a second time, as if it were new."""
    try:
        with open(path, "rb") as handle:
            ended = True
            if start > 0:
                handle.seek(start - 1)
                ended = handle.read(1) == b"\n"
            offset = start
            for place, line in enumerate(handle):
                offset += len(line)
                if not ended and place == 0 and line == b"\n":
                    continue
                try:
                    record = parse_json(line)
                except (ValueError, UnicodeDecodeError):
                    continue
                yield place, (record if isinstance(record, dict) else _NOT_AN_OBJECT)
            if read_to is not None:
                read_to[path.name] = offset
    except FileNotFoundError:
        return


def _read_all(output_dir: Path) -> list[tuple[str, dict]]:
    """(shard name, record) for every record of the journal and its shards, oldest first (see `_order`)."""
    ordered = []
    for path in sorted(Path(output_dir).glob(JOURNAL_GLOB)):
        for place, record in _shard_records(path):
            if record is not _NOT_AN_OBJECT:
                ordered.append((_order(record, path.name, place), path.name, record))
    ordered.sort(key=lambda item: item[0])
    return [(shard, record) for _order_key, shard, record in ordered]


def read_journal_dir(output_dir: Path) -> list[dict]:
    """Every record of the journal and its shards, oldest first (see `_order`)."""
    return [record for _shard, record in _read_all(output_dir)]


def _valid_run_record(record: dict) -> bool:
    return (isinstance(record.get("recipe"), dict) and optional(is_int)(record.get("run"))
            and optional(is_number)(record.get("t")))


def read_state(output_dir: Path, current_run: int | None = None, warn: bool = True,
               since: JournalState | None = None) -> JournalState:
    """The folder's journal, validated, the latest record of each image in write order. `current_run`: also
    collect that run's records apart (--no-save ones too), for the report of the run that is writing them.

    One pass over each shard, keeping only the latest typed record per image: a 100k-record journal costs
    100k small records in memory, never its text or its parsed dicts all at once.

    `since`: a state read earlier under the folder's lock, by the run now writing `current_run`: only the lines
    appended after it are read (every one of them belongs to that run, so it comes after all that `since` holds).
    A shard that is shorter than `since` read (rewritten since) makes it a whole read."""
    if since is not None and any(_size(Path(output_dir) / name) < end for name, end in since.read_to.items()):
        since = None
    latest: dict[tuple[int, int], tuple[tuple, ImageRecord]] = {}
    current: dict[tuple[int, int], ImageRecord] = {}
    recipe, recipe_order, last_run, has_images = None, None, 0, False
    skipped: dict[str, int] = {}
    read_to: dict[str, int] = {}
    if since is not None:
        recipe, recipe_order, last_run, has_images = since.recipe, (0,), since.last_run, since.has_images
        skipped, read_to = dict(since.skipped), dict(since.read_to)
    for path in sorted(Path(output_dir).glob(JOURNAL_GLOB)):
        shard = path.name
        for place, raw in _shard_records(path, read_to.get(shard, 0), read_to):
            kind = raw.get("type") if raw is not _NOT_AN_OBJECT else None
            record = ImageRecord.from_journal(raw) if kind == "image" else None
            if record is None and not (kind == "run" and _valid_run_record(raw)):
                skipped[shard] = skipped.get(shard, 0) + 1
                continue
            order = _order(raw, shard, place)
            if kind == "run":
                if recipe_order is None or order > recipe_order:
                    recipe, recipe_order = raw["recipe"], order
                last_run = max(last_run, raw.get("run") or 0)
                continue
            has_images = has_images or record.ok
            if record.run is not None:
                last_run = max(last_run, record.run)
                if record.run == current_run:
                    current[record.key] = record
            if record.saved is False or (record.saved is None and record.ok and record.image_path is None):
                continue  # a --no-save run's record: the files of earlier runs are still there to keep
            previous = latest.get(record.key)
            if previous is None or order > previous[0]:
                latest[record.key] = (order, record)
    if skipped and warn:
        where = ", ".join(f"{count} in {name}" for name, count in sorted(skipped.items()))
        log.warning("%s: passed over %d invalid journal record(s) (%s)", output_dir, sum(skipped.values()), where)
    images = {key: record for key, (_order_key, record) in latest.items()}
    if since is not None:
        images = {**since.images, **images}
    return JournalState(images, recipe, last_run, has_images, skipped, current, read_to)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def is_finished(job: Job, record: ImageRecord | None, output_dir: Path, verify: bool = False) -> bool:
    """The latest record is a success with the same recipe, and its file is still the one written: the same
    size and modification time as recorded when it was written (one stat, not a read), or, with `verify` or
    for a record from before sizes were recorded, the same sha256. A missing, truncated or replaced image is
    made again; one altered in place with its size and mtime kept is only caught by `verify`."""
    if record is None or not record.has_file or record.recipe_key != job.recipe_key:
        return False
    if record.image_path != job.image_path:
        return False
    path = os.path.join(output_dir, job.image_path)
    if verify or record.size is None or record.mtime_ns is None:
        return file_sha256(path) == record.sha256
    try:
        found = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and (found.st_size, found.st_mtime_ns) == (record.size, record.mtime_ns)


def changed_prompts(jobs: list[Job], state: JournalState, output_dir: Path) -> list[tuple[Job, ImageRecord]]:
    """(job, record) for each finished image whose prompt text the prompts file now changes: making the job would
    replace an image that is there (same ids, same path, another prompt)."""
    changed = []
    for job in jobs:
        record = state.images.get(job.key)
        if (record is not None and record.has_file and record.image_path == job.image_path
                and record.visual_prompt != job.visual_prompt
                and os.path.exists(os.path.join(output_dir, job.image_path))):
            changed.append((job, record))
    return changed


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
    if previous.get("dtype") != recipe.get("dtype") and previous.get("dtype") in ("float32", "float16", "bfloat16"):
        # --dtype auto picks by device (bfloat16 on a CPU with native bfloat16): the flag that resumes here.
        differences.append(f"  (made in {previous['dtype']}: add --dtype {previous['dtype']} to resume it)")
    raise OutputDirError(
        f"{output_dir}: holds images made with another recipe:\n"
        + "\n".join(differences)
        + "\nRe-run with the same settings to resume, add --overwrite to regenerate everything here, "
        "or choose another --output-dir."
    )


def refuse_changed_prompts(output_dir: Path, changed: list[tuple[Job, ImageRecord]], shown: int = 3) -> None:
    """Replacing finished images because the prompts file now gives them other texts must be asked for."""
    if not changed:
        return
    examples = [f"  sample {job.sample_idx} prompt {job.prompt_id}: {_short(record.visual_prompt)} there, "
                f"{_short(job.visual_prompt)} now" for job, record in changed[:shown]]
    more = [f"  ... and {len(changed) - shown} more"] if len(changed) > shown else []
    raise OutputDirError(
        f"{output_dir}: {len(changed)} finished image(s) would be replaced: the prompts file gives them other "
        "prompts than they were made with:\n" + "\n".join(examples + more)
        + "\nAdd --replace-changed to make them again with the new prompts (--overwrite regenerates everything), "
        "or choose another --output-dir."
    )


def _short(text: str, limit: int = 48) -> str:
    """Quoted and cut, with every control character escaped (the journal is untrusted; this goes to a terminal)."""
    quoted = json.dumps(text if len(text) <= limit else text[: limit - 1] + "…", ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) == "Cc" else c for c in quoted)
