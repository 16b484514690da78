"""Many sources analysed: in worker processes, handed back in input order, and remembered on disk, so that a folder
of thousands of files takes minutes on a many-core machine and an interrupted `prompts` (or `run`) resumes where it
stopped instead of analysing everything again.

The analysis is the slow part of the music stage (a 60 s clip takes 1–4 s of one core; see docs/PERFORMANCE.md), and
each file's is independent of the others', so it spreads over processes (`--jobs`; threads would share one core for
most of librosa's Python-level work). Prompts are still sampled in the main process, in input order, so the prompts
file is the same bytes whatever the number of jobs.

The cache (OUTPUT_STEM.analysis-cache.jsonl beside the prompts file) holds one JSON line per analysed source, keyed by
the source (its resolved path, size, modification time, and record for an .npy dataset) and by the analysis itself
(the source text of the modules that compute features, and the versions of the libraries they call): an edited file
or a changed analysis is analysed again, never read stale. Every line is untrusted: one that does not parse into
features of the right types is analysed again.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import math
import multiprocessing
import os
import signal
import stat
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from ..errors import AnalysisProcessError, AudioInputError
from .features import NOTE_NAMES, AudioProblem, MusicalFeatures, analyse
from .sources import AnalysedAudio, Source, load_source

log = logging.getLogger("music2image")

CACHE_FORMAT = 1
MAX_CACHE_LINE_BYTES = 64 * 1024  # a line holds a dozen numbers and the upstream metadata; more is not ours
# A worker analysing a five-minute excerpt (the most sources.py reads) peaked at 1.2 GiB with its imports
# (benchmarks/long_audio.py); `--jobs auto` starts no more workers than the free memory holds at that size.
WORKER_BYTES = 3 * 1024**3 // 2
# The modules whose code decides the features: a change to any of them makes every cached analysis stale.
ANALYSIS_MODULES = ("features.py", "pulse.py", "sources.py")
ANALYSIS_LIBRARIES = ("librosa", "numpy", "scipy", "soundfile")


@dataclass(frozen=True)
class Analysis:
    features: MusicalFeatures
    analysed: AnalysedAudio
    meta: dict | None  # a dataset record's upstream metadata (None for files)


@dataclass(frozen=True)
class Problem:
    """Why a source gave no analysis (unreadable, silent, too short…): the sample is skipped and says so."""

    reason: str
    meta: dict | None = None


# A worker's start (a fresh interpreter importing numpy, SciPy and librosa) costs about what one clip's analysis does,
# so `--jobs auto` gives each worker at least this many files; fewer files are analysed in this process.
FILES_PER_WORKER = 4


def auto_jobs(sources: int) -> int:
    """Worker processes for `sources` files: one per CPU this process may use, as many as free memory holds, each
    with FILES_PER_WORKER files at least; 1 (no workers: analysed in this process) for a handful of files."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    free = available_memory()
    by_memory = cpus if free is None else max(1, free // WORKER_BYTES)
    return max(1, min(cpus, by_memory, sources // FILES_PER_WORKER))


def available_memory() -> int | None:
    """Bytes that new processes can have without swapping: Linux's MemAvailable (free memory plus the page cache and
    other memory the kernel can reclaim; proc(5)), else free pages (SC_AVPHYS_PAGES, which counts no page cache: on
    a machine that has read a few GB of files it is a fraction of what is usable), else None."""
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no such counter here (macOS, Windows)
        return None


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
                rejected = sum(not self._take(line) for line in _bounded_lines(lines))
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
            entry = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" nested too deep
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
        try:
            line = json.dumps({"format": CACHE_FORMAT, "key": key,
                               "features": {name: getattr(analysis.features, name) for name in _FEATURE_TYPES},
                               "analysed": {"source_seconds": analysis.analysed.source_seconds,
                                            "windows": [list(window) for window in analysis.analysed.windows]},
                               "audio_meta": analysis.meta}, ensure_ascii=False, allow_nan=False)
        except ValueError:  # a NaN in upstream metadata has no JSON: this one is analysed again next time
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
                if self._file.tell():  # a line cut short by a crash must not swallow the next one
                    self._file.write("\n")
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            self._stop_keeping(exc.strerror or str(exc))

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


def _bounded_lines(lines) -> Iterator[bytes]:
    """The lines of a binary file, each read into memory only up to MAX_CACHE_LINE_BYTES + 1 bytes: a line longer
    than that (a hostile or corrupt file may be one line of gigabytes) is skipped in chunks and handed back as its
    first MAX_CACHE_LINE_BYTES + 1 bytes, which _take rejects."""
    while line := lines.readline(MAX_CACHE_LINE_BYTES + 1):
        if len(line) > MAX_CACHE_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := lines.readline(MAX_CACHE_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
        yield line


def _analyse_in_worker(task: tuple) -> Analysis | Problem:
    """A worker's job: a file's path (read there) or a dataset record's audio (read by the parent). Problems with the
    audio come back as a Problem; anything else is a bug and raises."""
    if task[0] == "file":
        return _analyse_here(Source(task[1].name, task[1]))
    audio, rate, analysed, meta = task[1:]
    try:
        return Analysis(analyse(audio, rate), analysed, meta)
    except AudioProblem as exc:
        return Problem(str(exc), meta)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool, the workers must not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _one_thread_per_worker():
    """Workers start with one BLAS/OpenMP thread each (N workers × N threads would fight over the cores)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def analyse_sources(sources: list[Source], jobs: int = 1,
                    cache: AnalysisCache | None = None) -> Iterator[Analysis | Problem]:
    """Each source's analysis (or the Problem that stopped it), in the order of `sources`. Cached analyses are
    handed back at once; the rest are analysed in this process (jobs=1) or in `jobs` worker processes, at most
    2 × jobs ahead of the consumer, and saved to `cache` as they come."""
    cache = AnalysisCache(None) if cache is None else cache
    keys = [source_key(source) for source in sources]
    if jobs <= 1 or sum(cache.get(k) is None for k in keys) <= 1:
        for source, key in zip(sources, keys):
            yield _cached_or(cache, key, lambda source=source: _analyse_here(source))
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch's threads
    with _one_thread_per_worker(), concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_ignore_interrupts) as pool:
        try:
            pending: dict[int, concurrent.futures.Future] = {}
            upcoming = iter(range(len(sources)))
            for index in range(len(sources)):
                while len(pending) < 2 * jobs:
                    ahead = next(upcoming, None)
                    if ahead is None:
                        break
                    if cache.get(keys[ahead]) is None:
                        pending[ahead] = _submit(pool, sources[ahead])
                    else:
                        pending[ahead] = None
                future = pending.pop(index)
                if future is None:
                    yield cache.get(keys[index])
                    continue
                outcome = future.result()
                if isinstance(outcome, Analysis):
                    cache.put(keys[index], outcome)
                yield outcome
        except (KeyboardInterrupt, GeneratorExit):  # Ctrl-C here, or in the consumer (which then closes us)
            _keep_running(pool, pending, keys, cache)
            raise
        except BrokenProcessPool as exc:  # seen when a result is awaited, or a next file is submitted
            _keep_finished(pending, keys, cache)
            pool.shutdown(wait=True, cancel_futures=True)
            raise _worker_died(sources[index], cache) from exc
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _keep_running(pool, pending: dict, keys: list, cache: AnalysisCache) -> None:
    """On a stop (Ctrl-C, or an error while the prompts are written): the analyses already running are finished and
    kept (seconds each), the rest cancelled; a second Ctrl-C stops the workers at once."""
    running = {index: future for index, future in pending.items() if future is not None and not future.cancel()}
    if running:
        log.warning("stopping: finishing the %d analyses in progress so they are kept (Ctrl-C again to drop "
                    "them)", len(running))
    try:
        for index, future in running.items():
            # exception() waits as result() does, but a broken pool (SIGTERM to the whole group) does not replace
            # the reason we are stopping
            if future.exception() is None and isinstance(outcome := future.result(), Analysis):
                cache.put(keys[index], outcome)
    except KeyboardInterrupt:
        for process in list(getattr(pool, "_processes", {}).values()):  # no public way before Python 3.14
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _keep_finished(pending: dict, keys: list, cache: AnalysisCache) -> None:
    """The analyses that finished before a worker died are kept (the pool is broken: nothing else will finish)."""
    for index, future in pending.items():
        if future is not None and future.done() and not future.cancelled() and future.exception() is None:
            outcome = future.result()
            if isinstance(outcome, Analysis):
                cache.put(keys[index], outcome)


def _worker_died(source: Source, cache: AnalysisCache) -> AnalysisProcessError:
    kept = (f"the {len(cache)} analyses made so far are kept in {cache.path}: run the same command again to resume"
            if cache.path is not None and len(cache) else "no analysis was kept")
    return AnalysisProcessError(
        f"a process analysing audio died while {source.name} or one of the files after it was analysed (killed for "
        f"memory? try fewer --jobs; --jobs 1 names the file if one crashes the decoder); {kept}")


def _submit(pool, source: Source) -> concurrent.futures.Future:
    if source.record is None:
        return pool.submit(_analyse_in_worker, ("file", source.path))
    try:
        loaded = load_source(source)  # a record of a dataset already in memory: its audio goes to the worker
    except AudioProblem as exc:
        done = concurrent.futures.Future()
        done.set_result(Problem(str(exc)))
        return done
    return pool.submit(_analyse_in_worker, ("audio", *loaded))


def _analyse_here(source: Source) -> Analysis | Problem:
    meta = None
    try:
        audio, rate, analysed, meta = load_source(source)
        return Analysis(analyse(audio, rate), analysed, meta)
    except AudioProblem as exc:
        return Problem(str(exc), meta)


def _cached_or(cache: AnalysisCache, key: str | None, compute) -> Analysis | Problem:
    known = cache.get(key)
    if known is not None:
        return known
    outcome = compute()
    if isinstance(outcome, Analysis):
        cache.put(key, outcome)
    return outcome
