"""The analysis cache: each source's analysis kept on disk as it is made (OUTPUT_STEM.analysis-cache.jsonl beside
the prompts file), so that an interrupted `prompts` (or `run`) resumes where it stopped (analysis.py uses it).

One JSON line per analysed source, keyed by the source (its resolved path, inode, size, modification and change
times, and record for an .npy dataset) and by the analysis itself (the source text of the modules that compute
features, and the versions of the libraries they call): an edited file or a changed analysis is analysed again,
never read stale. Every line is untrusted: one that does not parse into features analyse() could give is analysed
again. A complete run drops the lines of sources it was not given, or that changed (AnalysisCache.keep_only).
The cache is an optimisation: a file that cannot be kept costs a warning, not the run (only a symbolic
link in its place is refused, before any analysis: it points outside the output folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from ..errors import AudioInputError
from ..untrusted_json import loads as parse_json
from .features import NOTE_NAMES, MusicalFeatures
from .sources import AnalysedAudio, Source

log = logging.getLogger("music2image")

CACHE_FORMAT = 1
MAX_CACHE_LINE_BYTES = 64 * 1024  # a line holds a dozen numbers and the upstream metadata; more is not ours
# The modules whose code decides the features: a change to any of them makes every cached analysis stale.
ANALYSIS_MODULES = ("features.py", "pulse.py", "sources.py")
ANALYSIS_LIBRARIES = ("librosa", "numpy", "scipy", "soundfile")


@dataclass(frozen=True)
class Analysis:
    features: MusicalFeatures
    analysed: AnalysedAudio
    meta: dict | None  # a dataset record's upstream metadata (None for files)


@cache
def analysis_code() -> str:
    """What makes an analysis what it is: the feature code's own text and its libraries' versions, hashed."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for name in ANALYSIS_MODULES:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes() + b"\0")
    for library in ANALYSIS_LIBRARIES:
        try:
            digest.update(f"{library}={version(library)}\0".encode())
        except PackageNotFoundError:
            digest.update(f"{library}=?\0".encode())
    return digest.hexdigest()


def source_key(source: Source) -> str | None:
    """The cache key of a source as it is on disk now; None if it cannot be looked at (it is then not cached)."""
    try:
        status = source.path.stat()
        resolved = str(source.path.resolve())
    except OSError:
        return None
    # ctime as well as mtime: tools that preserve a modification time (cp -p, tar, unzip, rsync -t, touch -r) can
    # put other bytes of the same size under an old mtime, but the kernel sets ctime on every change and nothing
    # sets it back; the inode tells a file replaced by rename from the one it replaced.
    identity = {"code": analysis_code(), "path": resolved, "size": status.st_size, "mtime_ns": status.st_mtime_ns,
                "ctime_ns": status.st_ctime_ns, "inode": [status.st_dev, status.st_ino], "record": source.record}
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()


def cache_path_for(output: Path) -> Path:
    return output.with_name(f"{output.stem}.analysis-cache.jsonl")


_FEATURE_TYPES = {field.name: field.type for field in fields(MusicalFeatures)}


def _features_from(record) -> MusicalFeatures | None:
    """MusicalFeatures from a cache line's dict, or None unless every field is there with its type (finite floats)."""
    if not isinstance(record, dict) or set(record) != set(_FEATURE_TYPES):
        return None
    values = {}
    for name, kind in _FEATURE_TYPES.items():
        value = record[name]
        if kind == "str":  # what analyse() can give, no other text: it goes into the prompts file and the mapping
            if value not in (NOTE_NAMES if name == "key" else ("major", "minor")):
                return None
        elif value is None and "None" in kind:
            pass
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        else:
            value = float(value)
        values[name] = value
    return MusicalFeatures(**values)


def _analysed_from(record) -> AnalysedAudio | None:
    if not isinstance(record, dict):
        return None
    seconds, windows = record.get("source_seconds"), record.get("windows")
    numbers = [seconds] + [x for window in windows for x in window] if isinstance(windows, list) and all(
        isinstance(w, list) and len(w) == 2 for w in windows) else None
    if not numbers or len(numbers) < 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  and math.isfinite(x) for x in numbers):
        return None
    return AnalysedAudio(float(seconds), tuple((float(a), float(b)) for a, b in windows))


class AnalysisCache:
    """Analyses by source key, read from `path` (a JSON-lines file) once and appended to as sources are analysed.
    `path=None` keeps nothing."""

    def __init__(self, path: Path | None):
        self.path = path
        self._known: dict[str, Analysis] = {}
        self._file = None
        self._keeps = path is not None  # False once the file cannot be written: the run goes on without it
        self._lines = 0  # lines in the file: read (kept or not) and appended
        if path is None:
            return
        if path.is_symlink():
            raise AudioInputError(f"{path}: the analysis cache is a symbolic link; remove it or choose another --output")
        try:
            # O_NONBLOCK: a FIFO put in its place must not hang the run waiting for a writer
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("%s: the analysis cache cannot be read, analysing again (%s)", path, exc.strerror or exc)
            return
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            self._stop_keeping("it is not a regular file")
            return
        with os.fdopen(descriptor, "rb") as lines:
            try:
                taken = [self._take(line) if line.strip() else None for line in _bounded_lines(lines)]
                # a blank line is the separator put after a line a crash may have cut short (put): not rejected
                self._lines, rejected = len(taken), taken.count(False)
            except OSError as exc:
                log.warning("%s: the analysis cache cannot be read, analysing again (%s)", path, exc.strerror or exc)
                return
        if rejected:
            log.warning("%s: %d line(s) are not analyses of this version; those sources are analysed again", path,
                        rejected)

    def _take(self, line: bytes) -> bool:
        if len(line) > MAX_CACHE_LINE_BYTES:
            return False
        try:
            entry = parse_json(line)  # a lone surrogate in the metadata comes back as U+FFFD: it is written again
        except (ValueError, UnicodeDecodeError):
            return False
        if not (isinstance(entry, dict) and entry.get("format") == CACHE_FORMAT and isinstance(entry.get("key"), str)
                and len(entry["key"]) == 64):
            return False
        features, analysed = _features_from(entry.get("features")), _analysed_from(entry.get("analysed"))
        meta = entry.get("audio_meta")
        if features is None or analysed is None or not (meta is None or isinstance(meta, dict)):
            return False
        self._known[entry["key"]] = Analysis(features, analysed, meta)
        return True

    def __len__(self) -> int:
        return len(self._known)

    def get(self, key: str | None) -> Analysis | None:
        return None if key is None else self._known.get(key)

    def put(self, key: str | None, analysis: Analysis) -> None:
        if key is None:
            return
        self._known[key] = analysis
        if not self._keeps:
            return
        line = _line(key, analysis)
        if line is None:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                                     | os.O_NONBLOCK, 0o644)
                self._file = os.fdopen(descriptor, "a", encoding="utf-8")
                status = os.fstat(descriptor)
                if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
                    # a hard link's other name may be anywhere: appending would write outside the output folder
                    self._stop_keeping("it is not a regular file of its own (a FIFO, a device, a hard link)")
                    return
                if status.st_size and not _ends_a_line(self.path, status):
                    self._file.write("\n")  # a line cut short by a crash must not swallow the next one
            self._file.write(line + "\n")
            self._file.flush()
            self._lines += 1
        except OSError as exc:
            self._stop_keeping(exc.strerror or str(exc))

    def keep_only(self, keys: list[str | None]) -> None:
        """After a complete run over the sources with these keys: the file rewritten with their analyses alone once
        more than a quarter of its lines are of nothing else (files edited or gone, an older analysis, lines that did
        not parse). Appending never drops a line, so without this the cache grew by a line at each edit of a file,
        and by every file at each change of the analysis code. Rewritten to a temporary beside it, then renamed over
        it: a stop in between leaves the old file whole."""
        live = {key: self._known[key] for key in dict.fromkeys(keys) if key is not None and key in self._known}
        if not self._keeps or self._lines - len(live) <= len(live) // 4:
            return
        self.close()
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        created = False
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            created = True
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                for key, analysis in live.items():
                    line = _line(key, analysis)
                    if line is not None:
                        file.write(line + "\n")
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("%s: the analysis cache could not be rewritten without its stale lines (%s); it is kept as "
                        "it was", self.path, exc.strerror or exc)
            try:
                if created:  # ours only: a file already there under that name is not ours to remove
                    temporary.unlink()
            except OSError:
                pass
            return
        self._lines = len(live)

    def _stop_keeping(self, why: str) -> None:
        """The cache is an optimisation: a file that cannot be kept costs a warning, not the run (whose prompts file
        may well be writable: a read-only, odd or full cache file says nothing about it)."""
        log.warning("%s: analyses cannot be kept there (%s); the run goes on, but an interrupted run will analyse "
                    "again", self.path, why)
        self._keeps = False
        self.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # the last flush failed (disk full): the lines written are whole or rejected when read
                pass
            self._file = None


def _ends_a_line(path: Path, status: os.stat_result) -> bool:
    """Whether the file (the one of `status`) ends with a line break; False when that cannot be read."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        same = os.fstat(descriptor)
        return ((same.st_dev, same.st_ino) == (status.st_dev, status.st_ino)
                and os.pread(descriptor, 1, status.st_size - 1) == b"\n")
    except OSError:
        return False
    finally:
        os.close(descriptor)


def _line(key: str, analysis: Analysis) -> str | None:
    """A cache line, or None for an analysis whose upstream metadata holds a NaN (no JSON for it: analysed again)."""
    try:
        return json.dumps({"format": CACHE_FORMAT, "key": key,
                           "features": {name: getattr(analysis.features, name) for name in _FEATURE_TYPES},
                           "analysed": {"source_seconds": analysis.analysed.source_seconds,
                                        "windows": [list(window) for window in analysis.analysed.windows]},
                           "audio_meta": analysis.meta}, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return None


def _bounded_lines(lines) -> Iterator[bytes]:
    """The lines of a binary file, each read into memory only up to MAX_CACHE_LINE_BYTES + 1 bytes: a line longer
    than that (a hostile or corrupt file may be one line of gigabytes) is skipped in chunks and handed back as its
    first MAX_CACHE_LINE_BYTES + 1 bytes, which _take rejects."""
    while line := lines.readline(MAX_CACHE_LINE_BYTES + 1):
        if len(line) > MAX_CACHE_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := lines.readline(MAX_CACHE_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield line
