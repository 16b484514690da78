"""`generate()`: the one run, readable top to bottom, and `BatchImageGenerator`, the seed-compatible wrapper.

load & validate → plan → skip what is done → load models → open the folder → batches → engine → writer → journal
→ log/summary. Every input is checked before any weights load or any file is written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from fnmatch import fnmatch
from logging.handlers import MemoryHandler
from pathlib import Path

from .version import __version__
from .batches import Share, generate_share
from .context import RunContext
from .distributed import Launch
from .engine import Engine, available_device, dtype_reason, resolved_dtype_name
from .errors import DiskError, Interrupted, OutputDirError
from .journal import (JOURNAL_GLOB, JOURNAL_NAME, Journal, changed_prompts, is_finished, read_state,
                      refuse_changed_prompts, refuse_other_recipe)
from .outputs.documents import LOG_NAME, SUMMARY_NAME, TEXT_LOG_NAME, log_document, summary_document
from .outputs.files import (DEFAULT_FILES, LOCK_NAME, Files, LinkedPathError, OutputLock, TextLogHandler,
                            describe_link, now_iso, remove_stale_temporaries)
from .plan import plan_jobs
from .prompts import DEFAULT_PROMPTS_FILE, load_prompts, refuse_empty_selection, select_prompts
from .recipe import recipe_of
from .results import RunResult
from .safe_paths import creation_problem
from .settings import GenerationSettings

log = logging.getLogger("music2image")


def generate(context: RunContext) -> RunResult:
    """Generate every selected prompt's image into `context.output_dir`, resuming what an earlier run finished."""
    launch = Launch()  # one process, or one of an `accelerate launch`
    # 1. Check inputs: every setting and the whole prompts file, before any weights load or file is written.
    settings = context.settings.validate()
    prompts = load_prompts(context.prompts_file)
    selection = select_prompts(prompts, samples=context.samples, limit=context.limit,
                               sample_range=context.sample_range)
    refuse_empty_selection(context.prompts_name, prompts, selection, samples=context.samples, limit=context.limit,
                           sample_range=context.sample_range)
    del prompts  # the validated file's models (~60 MB for 100k prompts): the selection holds what the run uses

    # 2. Device and dtype decide the recipe; the recipe and the ids decide every job's seed and path.
    device = available_device(launch.device(settings.device))
    dtype_name = resolved_dtype_name(settings.dtype, device, settings.offload)
    # (The main process computes it: a single-file checkpoint's sha256 reads the whole file, once per launch.)
    recipe = launch.decide(lambda: recipe_of(settings, dtype_name))
    jobs = plan_jobs(selection.prompts, settings, recipe)

    folder = _Folder(context.output_dir, context.files)
    try:
        # 3. Skip what is done: the main process reads the journal, under the folder's lock, and decides.
        state_read = None  # that state, kept for step 7 (which then reads only what this run appends)

        def plan_todo():
            nonlocal state_read
            folder.refuse_links()
            folder.refuse_uncreatable()
            if folder.path.is_dir():
                folder.lock()
            state = read_state(folder.path) if not context.overwrite else None
            if state is not None:
                refuse_other_recipe(folder.path, state, recipe)
                if context.save_images and not context.replace_changed:
                    refuse_changed_prompts(folder.path, changed_prompts(jobs, state, folder.path))
            done = set()
            if context.save_images and state is not None:
                done = {job.key for job in jobs
                        if is_finished(job, state.images.get(job.key), folder.path, context.verify)}
            state_read = state
            for skipped in selection.skipped_samples:
                log.warning("skipping sample %d: %s", skipped.sample_idx, skipped.reason)
            log.info("device: %s", device)
            log.info("dtype %s (%s)", dtype_name, dtype_reason(settings.dtype, device))
            log.info("%d images selected, %d already done, %d to generate", len(jobs), len(done), len(jobs) - len(done))
            return [job.key for job in jobs if job.key not in done], (state.last_run if state else 0) + 1

        todo_keys, run_number = launch.decide(plan_todo)
        todo_set = set(todo_keys)
        todo = [job for job in jobs if job.key in todo_set]

        # 4. Load the models, only if there is work (a finished run re-run just rewrites log and summary).
        #    A first Ctrl-C/SIGTERM before or during loading stops right here, having made nothing (a second
        #    one aborts the load at once); after that, it stops after the batch in flight.
        launch.decide(lambda: _stop_if_asked(context.stop))
        engine = launch.together(lambda: Engine.load(settings, device)) if todo else None
        launch.decide(lambda: _stop_if_asked(context.stop))

        # 5. Only now touch the disk: folder, lock, text log, journal (the main process).
        launch.decide(lambda: folder.open(context.overwrite, {
            "type": "run", "run": run_number, "t": time.time(), "time": now_iso(), "recipe": recipe,
            "device": device, "pid": os.getpid(), "host": socket.gethostname(), "version": __version__,
            "selected": len(jobs), "todo": len(todo), "processes": launch.world}))

        # 6. Generate this process's share of the work into its own journal shard.
        started = time.perf_counter()
        share = generate_share(context, engine, recipe, device, jobs, todo, launch, run_number)

        # 7. Log and summary describe the whole selection, as if it had run in one go; the main process
        #    writes them once every process is done.
        interrupted = any(launch.gather(share.interrupted))
        if not launch.is_main:
            return RunResult(str(context.output_dir), share.mine, selection.skipped_samples, len(selection.prompts),
                             len(share.mine), interrupted, device, process_index=launch.rank, total_images=len(jobs))
        elapsed = time.perf_counter() - started - (share.compile_seconds or 0)
        state = read_state(context.output_dir, current_run=run_number, warn=False, since=state_read)
        return _report(context, recipe, device, jobs, todo_set, selection, engine, share, elapsed, run_number,
                       interrupted, launch.world, state)
    finally:
        folder.close()


class _Folder:
    """The output folder while a run holds it: its lock and its text log, released in `close`."""

    def __init__(self, path: Path, files: Files):
        self.path, self.files = Path(path), files
        self._lock: OutputLock | None = None
        self._text_log: logging.Handler | None = None
        # Messages before the folder exists go here, then into the text log once it does.
        self._early_log = MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        log.addHandler(self._early_log)

    def refuse_links(self) -> None:
        """Before anything is written: none of the files and folders this run writes may be a symbolic link (a
        planted `sample_003 -> /elsewhere` would receive images; a linked log or journal, our appends)."""
        if not os.path.isdir(self.path):  # (os.path: a parent we may not search is refuse_uncreatable's to say)
            return
        # Every name checked is one folder entry: one scandir of the folder says which are links, instead of an
        # lstat per name (a 100k-prompt run has 20k sample folders). Every image folder is a `sample_NNN`
        # (plan.image_relpath), so the prefix covers this run's folders and those of earlier runs alike.
        written = {LOCK_NAME, TEXT_LOG_NAME, LOG_NAME, SUMMARY_NAME}
        with os.scandir(self.path) as entries:
            links = sorted(self.path / entry.name for entry in entries if entry.is_symlink() and (
                entry.name in written or entry.name.startswith("sample_") or fnmatch(entry.name, JOURNAL_GLOB)))
        if links:
            listed = "\n".join(f"  {describe_link(link)}" for link in links[:10])
            more = f"\n  ... and {len(links) - 10} more" if len(links) > 10 else ""
            raise OutputDirError(
                f"{self.path}: music2image writes only inside the output folder, never through a symbolic link, "
                f"and {len(links)} path(s) here are links:\n{listed}{more}\n"
                "Remove the link(s) or choose another --output-dir; nothing was written.")

    def refuse_uncreatable(self) -> None:
        """A folder that does not exist yet is created in step 5, after the models load: say now if it cannot be
        (a file in the way, no permission to write where it goes), not minutes later. Nothing is created here."""
        if os.path.isdir(self.path):
            return
        problem = creation_problem(self.path)
        if problem:
            raise OutputDirError(f"{self.path}: cannot create the output folder: {problem}; nothing was written.")

    def lock(self) -> None:
        if self._lock is None:
            self._lock = OutputLock(self.path).acquire()

    def open(self, overwrite: bool, run_record: dict) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock()
            text_log = TextLogHandler(self.path / TEXT_LOG_NAME, encoding="utf-8")
        except LinkedPathError as exc:
            raise OutputDirError(f"{self.path}: {exc.strerror}") from exc
        except OSError as exc:
            raise OutputDirError(f"{self.path}: cannot create the output folder ({exc.strerror or exc})") from exc
        text_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._early_log.setTarget(text_log)
        self._early_log.flush()
        log.removeHandler(self._early_log)
        log.addHandler(text_log)
        self._text_log = text_log
        if remove_stale_temporaries(self.path):
            log.info("removed temporary files left by an interrupted run")
        if overwrite:
            for old in self.path.glob(JOURNAL_GLOB):
                self.files.write_atomic(old, b"")
        journal = Journal(self.path / JOURNAL_NAME, self.files)
        try:
            journal.append(run_record)
        except OSError as exc:
            raise DiskError(f"{self.path}: cannot write the journal ({exc.strerror or exc})") from exc
        finally:
            journal.close()

    def close(self) -> None:
        log.removeHandler(self._early_log)
        if self._text_log is not None:
            log.removeHandler(self._text_log)
            self._text_log.close()
        if self._lock is not None:
            self._lock.release()


def _stop_if_asked(stop: threading.Event) -> None:
    if stop.is_set():
        raise Interrupted("interrupted before any image was made; run the same command again to resume")


def _report(context: RunContext, recipe: dict, device: str, jobs, todo_keys: set, selection, engine, share: Share,
            elapsed: float, run_number: int, interrupted: bool, processes: int, state) -> RunResult:
    """Write the log and summary of the whole selection, from the journal (every process's shard) as `state`."""
    settings = context.settings
    images, generated_now = [], 0
    for job in jobs:
        record = state.current.get(job.key) or state.images.get(job.key)
        if record is None or record.recipe_key != job.recipe_key:
            continue
        this_run = record.run == run_number
        if job.key in todo_keys and not this_run:
            continue  # an older record of an image this run was to make (again) and did not reach
        generated_now += this_run
        # The prompts file may relabel a prompt (mode, temperature) without changing its image.
        images.append(record if (record.mode, record.temperature) == (job.mode, job.temperature)
                      else _relabel(record, job))
    # The folder's finished images this selection did not select (another --sample-range, --limit, prompts
    # file) stay in the log and summary: they describe the folder, not just this run.
    selected = {job.key for job in jobs}
    kept = [record for key, record in sorted((key, record) for key, record in state.images.items()
                                             if key not in selected and record.has_file)]
    result = RunResult(str(context.output_dir), images, selection.skipped_samples, len(selection.prompts),
                       generated_now, interrupted, device, total_images=len(jobs), kept=kept)
    extra = {
        "music2image_version": __version__,
        **{k: v for k, v in recipe.items() if k not in ("width", "height", "steps")},
        "batch_size": share.batch_size,
        "dtype_reason": dtype_reason(settings.dtype, device),
        # What ran, as the journal says of each image (a re-run that loads no model still reports it).
        "vae_decode_dtype": _one_or_all(r.vae_decode_dtype for r in images),
        "offload": _one_or_all(r.offload for r in images) or settings.offload,
        "vae_tiling": _one_or_all(r.vae_tiling for r in images) or settings.vae_tiling,
        "compile": settings.compile,
        "compile_seconds": round(share.compile_seconds, 3) if share.compile_seconds else None,
        "processes": processes,
        "cpu_threads_per_process": _torch_threads(),  # on a CPU, float results depend on it
        "save_images": context.save_images,
        "generated_this_run": generated_now,
        "elapsed_seconds": round(elapsed, 3),
        "images_per_second": round(generated_now / elapsed, 4) if generated_now and elapsed > 0 else None,
        "peak_gpu_memory_bytes": engine.peak_memory_bytes() if engine else None,
        "model_revisions": (engine.revisions or None) if engine else None,
        "memory_fallbacks": engine.memory_notes if engine else [],
    }
    result.log_path = str(context.output_dir / LOG_NAME)
    result.summary_path = str(context.output_dir / SUMMARY_NAME)
    try:
        document = log_document(result, context.prompts_name, settings, extra, streamed=True)
        context.files.write_json(Path(result.log_path), document)
        context.files.write_json(Path(result.summary_path), summary_document(result, settings))
    except OSError as exc:
        raise DiskError(
            f"{context.output_dir}: could not write the log and summary ({exc.strerror or exc}); every finished "
            "image is in the journal: free some space, then run the same command again."
        ) from exc
    log.info(
        "%s: %d succeeded, %d failed, %d pending, %d generated in %.1f s",
        "interrupted" if interrupted else "finished",
        result.successful, result.failed, len(jobs) - len(images), generated_now, elapsed,
    )
    return result


def _relabel(record, job):
    return dataclasses.replace(record, mode=job.mode, temperature=job.temperature)


def _one_or_all(values):
    """The one value every record shares, or the sorted list of them when they differ (None when there are none)."""
    found = sorted({v for v in values if v is not None})
    return found[0] if len(found) == 1 else (found or None)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


_SETTING_NAMES = set(GenerationSettings.__dataclass_fields__) - {"extra"}


class BatchImageGenerator:
    """Generate SDXL images for every selected prompt of a visual-prompts file (the seed script's class).

    >>> BatchImageGenerator("prompts.json", "images", width=512, height=512, steps=20).run()

    `prompts_file` is a path or an already-loaded prompts dict. Every GenerationSettings field (model, refiner,
    width, height, steps, device, seed, ...) may be passed as a keyword, or all of them as `settings=`.
    """

    def __init__(
        self,
        prompts_file: str | os.PathLike | dict = DEFAULT_PROMPTS_FILE,
        output_dir: str | os.PathLike = "images",
        *,
        settings: GenerationSettings | None = None,
        limit: int | None = None,
        samples: int | None = None,
        sample_range: tuple[int, int] | None = None,
        save_images: bool = True,
        overwrite: bool = False,
        replace_changed: bool = False,
        verify: bool = False,
        progress: bool | None = None,
        stop: threading.Event | None = None,
        files: Files = DEFAULT_FILES,
        progress_interval: float = 30.0,
        **setting_values,
    ):
        unknown = set(setting_values) - _SETTING_NAMES
        if unknown:
            raise TypeError(f"BatchImageGenerator got unknown settings: {', '.join(sorted(unknown))}")
        self.settings = (settings or GenerationSettings()).replace(**setting_values)
        self.prompts_file = prompts_file
        self.output_dir = Path(output_dir)
        self.context = RunContext(prompts_file, Path(output_dir), self.settings, limit, samples, sample_range,
                                  save_images, overwrite, replace_changed, verify, progress,
                                  stop or threading.Event(), files, progress_interval)

    def request_stop(self) -> None:
        """Ask the run to stop after abandoning the batch in flight (what the CLI does on SIGINT/SIGTERM)."""
        self.context.stop.set()

    def run(self) -> RunResult:
        return generate(self.context)
