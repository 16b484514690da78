"""Many sources analysed: in worker processes, handed back in input order, and remembered on disk, so that a folder
of thousands of files takes minutes on a many-core machine and an interrupted `prompts` (or `run`) resumes where it
stopped instead of analysing everything again.

The analysis is the slow part of the music stage (a 60 s clip takes 1–4 s of one core; see docs/PERFORMANCE.md), and
each file's is independent of the others', so it spreads over processes (`--jobs`; threads would share one core for
most of librosa's Python-level work). Prompts are still sampled in the main process, in input order, so the prompts
file is the same bytes whatever the number of jobs.

Each analysis is kept on disk as it is made (analysis_cache.py), so an interrupted run resumes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import AnalysisProcessError
from .analysis_cache import Analysis, AnalysisCache, source_key
from .features import AudioProblem, analyse
from .sources import Source, load_source

log = logging.getLogger("music2image")

# A worker analysing a five-minute excerpt (the most sources.py reads) peaked at 1.2 GiB with its imports
# (benchmarks/long_audio.py); `--jobs auto` starts no more workers than the free memory holds at that size.
WORKER_BYTES = 3 * 1024**3 // 2


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


def _analyse_in_worker(task: tuple) -> Analysis | Problem:
    """A worker's job: a file's path (read there) or a dataset record's audio (read by the parent). Problems with the
    audio come back as a Problem; anything else is a bug and raises."""
    if task[0] == "file":
        return _analyse_here(Source(task[1].name, task[1]))
    return _analyse_loaded(*task[1:])


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool, the workers must not each print a traceback.
    # A worker starts with SIGINT blocked (_interrupts_held): ignoring it first drops one that came while it started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def _interrupts_held():
    """SIGINT blocked in this thread (held back, not lost: it comes when this ends) while the pool starts workers,
    which inherit the mask. A worker takes about a second to import its modules before its initializer can ignore
    Ctrl-C; one pressed then printed each worker's KeyboardInterrupt traceback and, the pool broken, one from the
    pool's own thread. Not on Windows (no signal masks; the workers are not in the console's group there either)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


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
        cache.keep_only(keys)
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
            cache.keep_only(keys)
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
        f"memory? try fewer --jobs); {kept}")


def _submit(pool, source: Source) -> concurrent.futures.Future:
    if source.record is None:
        task = ("file", source.path)
    else:
        try:
            loaded = load_source(source)  # a record of a dataset already in memory: its audio goes to the worker
        except AudioProblem as exc:
            done = concurrent.futures.Future()
            done.set_result(Problem(str(exc)))
            return done
        task = ("audio", *loaded)
    with _interrupts_held():  # submit() starts a worker when none is idle
        return pool.submit(_analyse_in_worker, task)


def _analyse_here(source: Source) -> Analysis | Problem:
    try:
        loaded = load_source(source)
    except AudioProblem as exc:
        return Problem(str(exc))
    return _analyse_loaded(*loaded)


def _analyse_loaded(audio, rate: int, analysed, meta: dict | None) -> Analysis | Problem:
    """A source's audio, read, analysed (its upstream metadata kept either way)."""
    try:
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
