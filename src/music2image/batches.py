"""Step 6 of a run: this process's batches → engine → background writer (image + recipe, then journal record).

Saving overlaps the next batch on one writer thread; at most two batches are in flight, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .context import RunContext
from .engine import ImageOutcome, ImageRequest, StopRequested
from .errors import DiskError
from .journal import JOURNAL_GLOB, Journal, shard_name
from .records import ImageRecord
from .outputs.files import now_iso
from .outputs.image import encode_image
from .plan import Job
from .progress import Progress
from .recipe import image_metadata, library_versions

log = logging.getLogger("music2image")


@dataclass
class Share:
    """What this process did: its records, the batch size the launch used, and whether it was stopped."""

    interrupted: bool = False
    batch_size: int = 1
    mine: list[ImageRecord] = field(default_factory=list)
    compile_seconds: float | None = None


@dataclass(frozen=True)
class _Saving:
    """What the writer needs besides each image: fixed for the run."""

    context: RunContext
    recipe: dict
    device: str
    revisions: dict
    versions: dict
    tokens: dict
    journal: Journal
    run_number: int


def generate_share(context: RunContext, engine, recipe: dict, device: str, jobs: list[Job], todo: list[Job], launch,
                   run_number: int) -> Share:
    if not todo:
        return Share()
    settings = context.settings
    # One batch size for the whole launch (the main process's device decides), and whole batches handed out:
    # every batch holds the same images as in a one-process run, so pixels do not depend on the process count.
    batch_size = launch.decide(
        lambda: engine.auto_batch_size() if settings.batch_size == "auto" else settings.batch_size)
    batches = launch.shard([todo[i : i + batch_size] for i in range(0, len(todo), batch_size)])
    mine = [job for batch in batches for job in batch]
    compile_seconds = None
    if settings.compile and batches:
        if device == "cpu" and launch.is_main:
            # Warned, not refused: whether it pays off depends on the run's length, which only the user knows.
            log.warning("--compile on a CPU: compiling takes minutes (the 2-image tiny test model took 289 s on a "
                        "2-core Xeon, issue 12), which only a long run wins back; the time it takes is logged "
                        "and kept out of images/s")
        compile_seconds = engine.warm_up(batch_size)
        log.info("compiled the UNet and VAE decoder in %.1f s (not counted in images/s)", compile_seconds)
    if launch.is_main:
        log.info("model %s, dtype %s (VAE decode %s), batch size %d%s", settings.model, engine.dtype_name,
                 engine.decode_dtype_name, batch_size, f", {launch.world} processes" if launch.distributed else "")
    tokens = {job.key: engine.token_info(job.visual_prompt) for job in (todo if launch.is_main else mine)}
    long_prompts = sum(1 for info in tokens.values() if info.chunks > 1)
    if long_prompts and launch.is_main:
        log.warning(
            "%d of %d prompts are longer than CLIP's 75 tokens: %s", long_prompts, len(todo),
            "only their first 75 tokens are used (--truncate-prompts)" if settings.truncate_prompts
            else "encoded whole, in 75-token chunks (--truncate-prompts for SDXL's stock cut)",
        )
    name = shard_name(launch.rank)
    journal = Journal(context.output_dir / name, context.files)
    saving = _Saving(context, recipe, device, engine.revisions, library_versions(), tokens, journal, run_number)
    others = _OtherShards(context.output_dir, run_number, exclude=name) if launch.distributed else None
    fresh: dict[tuple[int, int], ImageRecord] = {}
    try:
        interrupted = _run_batches(saving, engine, jobs, todo, batches, batch_size, fresh, launch.is_main, others)
    finally:
        journal.close()
    return Share(interrupted, batch_size, [fresh[job.key] for job in mine if job.key in fresh], compile_seconds)


def _run_batches(saving: _Saving, engine, jobs, todo, batches, batch_size, fresh, show: bool, others) -> bool:
    context = saving.context
    stop = context.stop
    # A bar on a terminal; off one (and with --quiet, into the text log only), a line every interval and each tenth.
    bar = Progress(len(jobs), done=len(jobs) - len(todo), what="images", unit="img", bar=context.progress,
                   show=show, interval=context.progress_interval)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="music2image-writer")
    pending: deque[Future] = deque()
    last_count = time.monotonic()
    counted_elsewhere = 0

    def collect(future: Future) -> None:
        nonlocal counted_elsewhere, last_count
        record = future.result()  # re-raises a write error (disk full, permission) here
        fresh[record.key] = record
        if not record.ok:
            log.warning("failed: sample %d prompt %d: %s", record.sample_idx, record.prompt_id, record.error)
        step = 1
        if others is not None and time.monotonic() - last_count > 2:  # one view: count the other processes too
            last_count = time.monotonic()
            now = others()
            step, counted_elsewhere = step + now - counted_elsewhere, now
        bar.update(step)

    interrupted = False
    try:
        for batch in batches:
            if stop.is_set():
                interrupted = True
                break
            t0 = time.perf_counter()
            requests = [ImageRequest(job.visual_prompt, job.seed) for job in batch]
            if context.settings.compile:  # a compiled graph has a fixed batch shape: pad with repeats, drop them
                requests += requests[-1:] * (batch_size - len(requests))
            try:
                outcomes = engine.generate(requests, stop.is_set)[: len(batch)]
            except StopRequested:
                interrupted = True
                break
            seconds = (time.perf_counter() - t0) / len(batch)
            for job, outcome in zip(batch, outcomes):
                pending.append(writer.submit(save_image, saving, job, outcome, seconds))
            # Saving overlaps the next batch; keep at most two batches in flight so memory stays bounded.
            while len(pending) > 2 * batch_size or (pending and pending[0].done()):
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    except OSError as exc:
        for future in pending:
            future.cancel()
        raise DiskError(
            f"{context.output_dir}: could not write results ({exc.strerror or exc}). Nothing finished is lost: "
            "free some space or fix the permissions, then run the same command again to resume."
        ) from exc
    finally:
        writer.shutdown(wait=True)
        bar.close()
    if interrupted:
        log.warning("interrupted: re-run the same command to resume")
    return interrupted


def save_image(saving: _Saving, job: Job, outcome: ImageOutcome, seconds: float) -> ImageRecord:
    """Runs on the writer thread: encode with the recipe inside, write atomically, then journal it."""
    context = saving.context
    tokens = saving.tokens[job.key]
    image_path = sha256 = size = mtime_ns = None
    if outcome.pixels is not None and context.save_images:
        text = image_metadata(job, context.settings, saving.recipe, saving.device, saving.revisions,
                              saving.versions)
        data = encode_image(outcome.pixels, context.settings.image_format, text)
        target = context.files.write_into(context.output_dir, job.image_path, data)  # through no symbolic link
        image_path, sha256 = job.image_path, hashlib.sha256(data).hexdigest()
        written = os.stat(target)  # resume trusts a file that still has this size and mtime (journal.is_finished)
        size, mtime_ns = written.st_size, written.st_mtime_ns
    record = ImageRecord.made(
        job,
        status="failed" if outcome.pixels is None else "success",
        image_path=image_path,
        sha256=sha256,
        error=outcome.error,
        error_type=outcome.error_type,
        seconds=round(seconds, 4),
        notes=tuple(outcome.notes),
        token_count=tokens.tokens,
        prompt_encoding=tokens.encoding(context.settings.truncate_prompts),
        vae_decode_dtype=outcome.decode_dtype,
        offload=outcome.offload,
        vae_tiling=outcome.vae_tiling,
        device=saving.device,
        run=saving.run_number,
        saved=context.save_images,
        size=size,
        mtime_ns=mtime_ns,
    )
    saving.journal.append(record.to_journal(pid=os.getpid(), t=time.time(), time=now_iso()))
    return record


class _OtherShards:
    """Counts the images the other processes of this launch have journaled in this run (for the main process's
    progress bar), reading only what each shard gained since the last call: it runs on the generating thread."""

    def __init__(self, output_dir: Path, run_number: int, exclude: str):
        self.output_dir, self.run_number, self.exclude = Path(output_dir), run_number, exclude
        self.offsets: dict[Path, int] = {}
        self.count = 0

    def __call__(self) -> int:
        for path in self.output_dir.glob(JOURNAL_GLOB):
            if path.name == self.exclude:
                continue
            records, self.offsets[path] = Journal.read_from(path, self.offsets.get(path, 0))
            self.count += sum(1 for r in records if r.get("type") == "image" and r.get("run") == self.run_number)
        return self.count
