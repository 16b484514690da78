"""`BatchImageGenerator`: the one run, readable top to bottom.

load & validate → plan → skip what is done → load models → batches → engine → writer → journal → log/summary
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import signal
import socket
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from logging.handlers import MemoryHandler
from pathlib import Path

from . import __version__
from .engine import (Engine, ImageOutcome, ImageRequest, StopRequested, available_device, dtype_reason,
                     resolved_dtype_name)
from .distributed import Launch
from .errors import DiskError, ModelLoadError, OutputDirError
from .outputs import (
    JOURNAL_NAME,
    LOG_NAME,
    SUMMARY_NAME,
    TEXT_LOG_NAME,
    Journal,
    OutputLock,
    a1111_parameters,
    atomic_write_bytes,
    atomic_write_json,
    encode_image,
    latest_image_records,
    latest_run_recipe,
    now_iso,
    read_journal_dir,
    remove_stale_temporaries,
)
from .plan import Job, finished_jobs, plan_jobs, recipe_settings, single_file_fields
from .prompts import DEFAULT_PROMPTS_FILE, load_prompts, select_prompts
from .results import ImageResult, RunResult, log_document, summary_document
from .settings import SAMPLER_NAMES, GenerationSettings
from .single_file import SHORT_HASH_LENGTH

log = logging.getLogger("music2image")
_SETTING_NAMES = set(GenerationSettings.__dataclass_fields__) - {"extra"}


class BatchImageGenerator:
    """Generate SDXL images for every selected prompt of a visual-prompts file.

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
        progress: bool | None = None,
        **setting_values,
    ):
        unknown = set(setting_values) - _SETTING_NAMES
        if unknown:
            raise TypeError(f"BatchImageGenerator got unknown settings: {', '.join(sorted(unknown))}")
        self.settings = (settings or GenerationSettings()).replace(**setting_values)
        self.prompts_file = prompts_file
        self.output_dir = Path(output_dir)
        self.limit, self.samples, self.sample_range = limit, samples, sample_range
        self.save_images = save_images
        self.overwrite = overwrite
        self.progress = progress
        self._stop_requested = threading.Event()
        self._tokens: dict = {}
        self._revisions: dict = {}
        self._compile_seconds = None
        self._dtype_reason = None

    def request_stop(self) -> None:
        """Ask the run to stop after abandoning the batch in flight (what SIGINT/SIGTERM do)."""
        self._stop_requested.set()

    def run(self) -> RunResult:
        launch = Launch()  # one process, or one of an `accelerate launch`
        # 1. Check inputs: every setting and the whole prompts file, before any weights load or file is written.
        settings = self.settings.validate()
        prompts = load_prompts(self.prompts_file)
        selection = select_prompts(prompts, samples=self.samples, limit=self.limit, sample_range=self.sample_range)

        # 2. Device and dtype decide the recipe; the recipe and the ids decide every job's seed and path.
        device = available_device(launch.device(settings.device))
        dtype_name = resolved_dtype_name(settings.dtype, device, settings.offload)
        # (The main process computes it: a single-file checkpoint's sha256 reads the whole file, once per launch.)
        recipe = launch.decide(lambda: recipe_settings(settings, dtype_name))
        jobs = plan_jobs(selection.prompts, settings, recipe)

        early_log = MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        log.addHandler(early_log)
        self._dtype_reason = dtype_reason(settings.dtype, device)
        log.info("dtype %s (%s)", dtype_name, self._dtype_reason)
        self._lock, self._text_log = None, None
        try:
            # 3. Skip what is done: the main process reads the journal, under the folder's lock, and decides.
            todo_keys = launch.decide(lambda: self._plan(jobs, recipe, selection, device))
            todo = [job for job in jobs if job.key in todo_keys]

            # 4. Load the models, only if there is work (a finished run re-run just rewrites log and summary).
            engine = launch.together(lambda: Engine.load(settings, device)) if todo else None
            self._revisions = engine.revisions if engine else {}

            # 5. Only now touch the disk: folder, lock, text log, journal (the main process).
            run_t = launch.decide(lambda: self._open_output(early_log, recipe, device, jobs, todo, launch.world))

            # 6. Generate this process's share of the work into its own journal shard.
            started = time.perf_counter()
            interrupted, batch_size, mine = self._generate_share(engine, settings, recipe, device, jobs, todo, launch, run_t)

            # 7. Log and summary describe the whole selection, as if it had run in one go; the main process
            #    writes them once every process is done.
            interrupted = any(launch.gather(interrupted))
            if not launch.is_main:
                return RunResult(str(self.output_dir), mine, selection.skipped_samples, len(jobs), len(mine),
                                 interrupted, device, process_index=launch.rank)
            return self._report(settings, recipe, device, jobs, todo_keys, selection, engine, batch_size,
                                started, run_t, interrupted, launch.world)
        finally:
            log.removeHandler(early_log)
            if self._text_log is not None:
                log.removeHandler(self._text_log)
                self._text_log.close()
            if self._lock is not None:
                self._lock.release()

    def _plan(self, jobs: list[Job], recipe: dict, selection, device: str) -> set[tuple[int, int]]:
        if self.output_dir.is_dir():
            self._lock = OutputLock(self.output_dir).acquire()
        records = [] if self.overwrite else read_journal_dir(self.output_dir)
        self._refuse_other_recipe(records, recipe)
        latest = latest_image_records(records)
        done = finished_jobs(jobs, latest, self.output_dir) if self.save_images else set()
        todo = {job.key for job in jobs if job.key not in done}
        for skipped in selection.skipped_samples:
            log.warning("skipping sample %d: %s", skipped.sample_idx, skipped.reason)
        log.info("device: %s", device)
        log.info("%d prompts selected, %d already done, %d to generate", len(jobs), len(done), len(todo))
        return todo

    def _refuse_other_recipe(self, records: list[dict], recipe: dict) -> None:
        previous = latest_run_recipe(records)
        has_images = any(r.get("type") == "image" and r.get("status") == "success" for r in records)
        if previous is None or not has_images:
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
            f"{self.output_dir}: holds images made with another recipe:\n"
            + "\n".join(differences)
            + "\nRe-run with the same settings to resume, add --overwrite to regenerate everything here, "
            "or choose another --output-dir."
        )

    def _open_output(self, early_log, recipe, device, jobs, todo, processes: int) -> float:
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._lock = self._lock or OutputLock(self.output_dir).acquire()
            text_log = logging.FileHandler(self.output_dir / TEXT_LOG_NAME, encoding="utf-8")
        except OSError as exc:
            raise OutputDirError(f"{self.output_dir}: cannot create the output folder ({exc.strerror or exc})") from exc
        text_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        early_log.setTarget(text_log)
        early_log.flush()
        log.removeHandler(early_log)
        log.addHandler(text_log)
        self._text_log = text_log
        if remove_stale_temporaries(self.output_dir):
            log.info("removed temporary files left by an interrupted run")
        if self.overwrite:
            for old in self.output_dir.glob("generation_journal*.jsonl"):
                atomic_write_bytes(old, b"")
        run_t = time.time()
        journal = Journal(self.output_dir / JOURNAL_NAME)
        try:
            journal.append({"type": "run", "t": run_t, "time": now_iso(), "recipe": recipe, "device": device,
                            "pid": os.getpid(), "host": socket.gethostname(), "version": __version__,
                            "selected": len(jobs), "todo": len(todo), "processes": processes})
        except OSError as exc:
            raise DiskError(f"{self.output_dir}: cannot write the journal ({exc.strerror or exc})") from exc
        finally:
            journal.close()
        return run_t

    def _generate_share(self, engine, settings, recipe, device, jobs, todo, launch, run_t):
        if not todo:
            return False, 1, []
        # One batch size for the whole launch (the main process's device decides), and whole batches handed out:
        # every batch holds the same images as in a one-process run, so pixels do not depend on the process count.
        batch_size = launch.decide(
            lambda: engine.auto_batch_size() if settings.batch_size == "auto" else settings.batch_size)
        batches = launch.shard([todo[i : i + batch_size] for i in range(0, len(todo), batch_size)])
        mine = [job for batch in batches for job in batch]
        if settings.compile and batches:
            self._compile_seconds = engine.warm_up(batch_size)
            log.info("compiled the UNet and VAE decoder in %.1f s (not counted in images/s)", self._compile_seconds)
        if launch.is_main:
            log.info("model %s, dtype %s (VAE decode %s), batch size %d%s", settings.model, engine.dtype_name,
                     engine.decode_dtype_name, batch_size, f", {launch.world} processes" if launch.distributed else "")
        self._tokens = {job.key: engine.token_info(job.visual_prompt) for job in (todo if launch.is_main else mine)}
        long_prompts = sum(1 for info in self._tokens.values() if info.chunks > 1)
        if long_prompts and launch.is_main:
            log.warning(
                "%d of %d prompts are longer than CLIP's 75 tokens: %s", long_prompts, len(todo),
                "only their first 75 tokens are used (--truncate-prompts)" if settings.truncate_prompts
                else "encoded whole, in 75-token chunks (--truncate-prompts for SDXL's stock cut)",
            )
        name = JOURNAL_NAME if launch.rank == 0 else JOURNAL_NAME.replace(".jsonl", f".{launch.rank}.jsonl")
        journal = Journal(self.output_dir / name)
        others = _OtherShards(self.output_dir, run_t, exclude=name) if launch.distributed else None
        fresh: dict[tuple[int, int], ImageResult] = {}
        try:
            interrupted = self._generate(engine, settings, recipe, device, jobs, todo, batches, batch_size, journal,
                                         fresh, show=launch.is_main, others=others)
        finally:
            journal.close()
        return interrupted, batch_size, [fresh[job.key] for job in mine if job.key in fresh]

    def _report(self, settings, recipe, device, jobs, todo_keys, selection, engine, batch_size, started, run_t,
                interrupted, processes) -> RunResult:
        latest = latest_image_records(read_journal_dir(self.output_dir))
        images, generated_now, included = [], 0, []
        for job in jobs:
            record = latest.get(job.key)
            if record is None or record.get("recipe_key") != job.recipe_key:
                continue
            made_now = record.get("t", 0) >= run_t
            if job.key in todo_keys and not made_now:
                continue  # an older record of an image this run was to make (again) and did not reach
            generated_now += made_now
            images.append(ImageResult.from_record(job, record))
            included.append(record)
        result = RunResult(str(self.output_dir), images, selection.skipped_samples, len(jobs), generated_now,
                           interrupted, device)
        elapsed = time.perf_counter() - started - (self._compile_seconds or 0)
        extra = {
            "music2image_version": __version__,
            **{k: v for k, v in recipe.items() if k not in ("width", "height", "steps")},
            "batch_size": batch_size,
            "dtype_reason": self._dtype_reason,
            # What ran, as the journal says of each image (a re-run that loads no model still reports it).
            "vae_decode_dtype": _one_or_all(r.get("vae_decode_dtype") for r in included),
            "offload": _one_or_all(r.get("offload") for r in included) or settings.offload,
            "vae_tiling": _one_or_all(r.get("vae_tiling") for r in included) or settings.vae_tiling,
            "compile": settings.compile,
            "compile_seconds": round(self._compile_seconds, 3) if self._compile_seconds else None,
            "processes": processes,
            "cpu_threads_per_process": _torch_threads(),  # on a CPU, float results depend on it
            "save_images": self.save_images,
            "generated_this_run": generated_now,
            "elapsed_seconds": round(elapsed, 3),
            "images_per_second": round(generated_now / elapsed, 4) if generated_now and elapsed > 0 else None,
            "peak_gpu_memory_bytes": engine.peak_memory_bytes() if engine else None,
            "model_revisions": self._revisions or None,
            "memory_fallbacks": engine.memory_notes if engine else [],
        }
        prompts_name = "<dict>" if isinstance(self.prompts_file, dict) else str(self.prompts_file)
        result.log_path = str(self.output_dir / LOG_NAME)
        result.summary_path = str(self.output_dir / SUMMARY_NAME)
        try:
            atomic_write_json(Path(result.log_path), log_document(result, prompts_name, settings, extra))
            atomic_write_json(Path(result.summary_path), summary_document(result, settings))
        except OSError as exc:
            raise DiskError(
                f"{self.output_dir}: could not write the log and summary ({exc.strerror or exc}); every finished "
                "image is in the journal: free some space, then run the same command again."
            ) from exc
        log.info(
            "%s: %d succeeded, %d failed, %d pending, %d generated in %.1f s",
            "interrupted" if interrupted else "finished",
            result.successful, result.failed, len(jobs) - len(images), generated_now, elapsed,
        )
        return result

    # 6. Batches → engine → background writer → journal.
    def _generate(self, engine, settings, recipe, device, jobs, todo, batches, batch_size, journal, fresh,
                  show: bool, others) -> bool:
        from tqdm import tqdm

        show_bar = show and (self.progress if self.progress is not None else sys.stderr.isatty())
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="img", disable=not show_bar, dynamic_ncols=True)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="music2image-writer")
        pending: deque[Future] = deque()
        last_report = last_count = time.monotonic()
        counted_elsewhere = 0

        def collect(future: Future) -> None:
            nonlocal counted_elsewhere, last_count
            result = future.result()  # re-raises a write error (disk full, permission) here
            fresh[result.job.key] = result
            if not result.ok:
                log.warning("failed: sample %d prompt %d: %s", result.job.sample_idx, result.job.prompt_id, result.error)
            step = 1
            if others is not None and time.monotonic() - last_count > 2:  # one view: count the other processes too
                last_count = time.monotonic()
                now = others()
                step, counted_elsewhere = step + now - counted_elsewhere, now
            bar.update(step)

        interrupted = False
        try:
            with _stop_on_signals(self._stop_requested):
                for batch in batches:
                    if self._stop_requested.is_set():
                        interrupted = True
                        break
                    t0 = time.perf_counter()
                    requests = [ImageRequest(job.visual_prompt, job.seed) for job in batch]
                    if settings.compile:  # a compiled graph has a fixed batch shape: pad with repeats, drop them
                        requests += requests[-1:] * (batch_size - len(requests))
                    try:
                        outcomes = engine.generate(requests, self._stop_requested.is_set)[: len(batch)]
                    except StopRequested:
                        interrupted = True
                        break
                    seconds = (time.perf_counter() - t0) / len(batch)
                    memory = (engine.offload, engine.vae_tiling)  # as in effect for this batch (after any OOM fallback)
                    for job, outcome in zip(batch, outcomes):
                        pending.append(writer.submit(self._save, job, outcome, seconds, memory, settings, recipe,
                                                     device, journal))
                    # Saving overlaps the next batch; keep at most two batches in flight so memory stays bounded.
                    while len(pending) > 2 * batch_size or (pending and pending[0].done()):
                        collect(pending.popleft())
                    if show and not show_bar and time.monotonic() - last_report > 30:
                        last_report = time.monotonic()
                        log.info("progress: %d/%d images", bar.n, len(jobs))
            while pending:
                collect(pending.popleft())
        except OSError as exc:
            for future in pending:
                future.cancel()
            raise DiskError(
                f"{self.output_dir}: could not write results ({exc.strerror or exc}). Nothing finished is lost: "
                "free some space or fix the permissions, then run the same command again to resume."
            ) from exc
        finally:
            writer.shutdown(wait=True)
            bar.close()
        if interrupted:
            log.warning("interrupted: re-run the same command to resume")
        return interrupted

    def _save(self, job: Job, outcome: ImageOutcome, seconds, memory, settings, recipe, device, journal) -> ImageResult:
        """Runs on the writer thread: encode with the recipe inside, write atomically, then journal it."""
        record = {
            "type": "image",
            "sample_idx": job.sample_idx,
            "prompt_id": job.prompt_id,
            "mode": job.mode,
            "temperature": job.temperature,
            "visual_prompt": job.visual_prompt,
            "seed": job.seed,
            "recipe_key": job.recipe_key,
            "device": device,
            "pid": os.getpid(),
            "seconds": round(seconds, 4),
            "notes": outcome.notes,
            "vae_decode_dtype": outcome.decode_dtype,
            "offload": memory[0],
            "vae_tiling": memory[1],
            "token_count": self._tokens[job.key].tokens,
            "prompt_encoding": self._tokens[job.key].encoding(settings.truncate_prompts),
            "image_path": None,
            "sha256": None,
            "error": outcome.error,
            "error_type": outcome.error_type,
            "status": "failed" if outcome.pixels is None else "success",
        }
        if outcome.pixels is not None and self.save_images:
            data = encode_image(outcome.pixels, settings.image_format, image_metadata(job, settings, recipe, device,
                                                                                    self._revisions))
            target = self.output_dir / job.image_path
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, data)
            record["image_path"] = job.image_path
            record["sha256"] = hashlib.sha256(data).hexdigest()
        record["t"] = time.time()
        record["time"] = now_iso()
        journal.append(record)
        return ImageResult(
            job=job,
            status=record["status"],
            image_path=record["image_path"],
            error=outcome.error,
            error_type=outcome.error_type,
            seconds=seconds,
            notes=outcome.notes,
            token_count=record["token_count"],
            prompt_encoding=record["prompt_encoding"],
        )


class _OtherShards:
    """Counts the images the other processes of this launch have journaled (for the main process's progress bar),
    reading only what each shard gained since the last call: it runs on the generating thread, every 2 s."""

    def __init__(self, output_dir: Path, since: float, exclude: str):
        self.output_dir, self.since, self.exclude = Path(output_dir), since, exclude
        self.offsets: dict[Path, int] = {}
        self.count = 0

    def __call__(self) -> int:
        for path in self.output_dir.glob("generation_journal*.jsonl"):
            if path.name == self.exclude:
                continue
            records, self.offsets[path] = Journal.read_from(path, self.offsets.get(path, 0))
            self.count += sum(1 for r in records if r.get("type") == "image" and r.get("t", 0) >= self.since)
        return self.count


def _one_or_all(values):
    """The one value every record shares, or the sorted list of them when they differ (None when there are none)."""
    found = sorted({v for v in values if v is not None})
    return found[0] if len(found) == 1 else (found or None)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def library_versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {
        "music2image": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def image_metadata(job: Job, settings: GenerationSettings, recipe: dict, device: str,
                   revisions: dict | None = None) -> dict[str, str]:
    """The two text chunks every image carries: A1111 `parameters`, and our full recipe as JSON (with the hub
    commit of each model that came from the hub)."""
    full = {
        "format": "music2image-recipe/1",
        "prompt": job.visual_prompt,
        "seed": job.seed,
        "sample_idx": job.sample_idx,
        "prompt_id": job.prompt_id,
        "mode": job.mode,
        "temperature": job.temperature,
        "recipe": recipe,
        "device": device,
        "versions": library_versions(),
        **({"revisions": revisions} if revisions else {}),
    }
    model_hash = recipe.get("model_sha256")
    refiner_hash = recipe.get("refiner_model_sha256")
    refiner = settings.refiner_model if settings.refiner else None
    if refiner and refiner_hash:
        refiner = f"{Path(refiner).stem} [{refiner_hash[:SHORT_HASH_LENGTH]}]"
    fields = {
        "Steps": settings.steps,
        "Sampler": SAMPLER_NAMES[settings.scheduler],
        "CFG scale": settings.guidance_scale,
        "Seed": job.seed,
        "Size": f"{settings.width}x{settings.height}",
        # A1111 names a single-file checkpoint by its file stem and its short hash (what Civitai matches on).
        "Model hash": model_hash[:SHORT_HASH_LENGTH] if model_hash else None,
        "Model": Path(settings.model).stem if model_hash else settings.model,
        "Refiner": refiner,
        "Refiner switch at": settings.refiner_switch if settings.refiner else None,
        "Version": f"music2image {__version__}",
    }
    return {
        "parameters": a1111_parameters(job.visual_prompt, settings.negative_prompt, fields),
        "music2image": json.dumps(full, ensure_ascii=False, sort_keys=True),
    }


class _stop_on_signals:
    """First SIGINT/SIGTERM: stop after the batch in flight is abandoned. Second: stop at once
    (KeyboardInterrupt); atomic writes still leave no torn file."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.previous = {}

    def _handle(self, signum, frame):
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        log.warning("%s received: stopping (press Ctrl-C again to stop at once)", signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def read_recipe(image_path: str | os.PathLike) -> dict:
    """The full recipe embedded in an image we made (PNG text chunk, or EXIF for WebP/JPEG)."""
    from PIL import UnidentifiedImageError

    from .errors import Music2ImageError
    from .outputs import read_image_text

    try:
        text = read_image_text(Path(image_path))
    except (OSError, UnidentifiedImageError) as exc:
        raise Music2ImageError(f"{image_path}: cannot read the image ({exc})") from exc
    try:
        recipe = json.loads(text["music2image"])
        recipe["recipe"]["model"]
    except (KeyError, ValueError, TypeError):
        raise Music2ImageError(f"{image_path}: has no music2image recipe (was it made by music2image?)") from None
    recipe["parameters"] = text.get("parameters")
    return recipe


def regenerate_image(image_path: str | os.PathLike, output: str | os.PathLike | None = None,
                     device: str | None = None) -> Path:
    """Make an image again from the recipe inside it: byte-identical on the same device and library versions."""
    document = read_recipe(image_path)
    recipe = document["recipe"]
    settings = GenerationSettings(
        model=recipe["model"],
        model_config=recipe.get("model_config"),
        vae=recipe.get("vae"),
        refiner=recipe.get("refiner_model") is not None,
        refiner_model=recipe.get("refiner_model") or GenerationSettings.refiner_model,
        refiner_model_config=recipe.get("refiner_model_config"),
        refiner_switch=recipe.get("refiner_switch") or GenerationSettings.refiner_switch,
        width=recipe["width"],
        height=recipe["height"],
        steps=recipe["steps"],
        scheduler=recipe["scheduler"],
        timestep_spacing=recipe.get("timestep_spacing"),
        guidance_scale=recipe["guidance_scale"],
        negative_prompt=recipe.get("negative_prompt"),
        seed=recipe["seed"],
        dtype=recipe["dtype"],
        truncate_prompts=recipe.get("truncate_prompts", False),
        image_format=recipe.get("image_format", "png"),
        compile=recipe.get("compile", False),
        lora=recipe.get("lora"),
        lora_scale=recipe.get("lora_scale", 1.0),
        device=device or document.get("device", "auto"),
        batch_size=1,
    ).validate()
    for key, now in single_file_fields(settings).items():
        if key.endswith("_sha256") and recipe.get(key) != now:
            source = recipe[key.removesuffix("_sha256")]
            raise ModelLoadError(
                f"{image_path}: was made from {source} with sha256 {recipe.get(key)}, but that file now has sha256 "
                f"{now}: the checkpoint changed, so the image would not come out the same")
    device = available_device(settings.device)
    job = Job(
        sample_idx=document["sample_idx"],
        prompt_id=document["prompt_id"],
        mode=document["mode"],
        temperature=document.get("temperature"),
        visual_prompt=document["prompt"],
        seed=document["seed"],
        image_path=str(image_path),
        recipe_key="",
    )
    engine = Engine.load(settings, device)
    outcome = engine.generate([ImageRequest(job.visual_prompt, job.seed)])[0]
    if outcome.pixels is None:
        raise DiskError(f"{image_path}: regeneration failed: {outcome.error}")
    data = encode_image(outcome.pixels, settings.image_format,
                        image_metadata(job, settings, recipe, device, engine.revisions))
    source = Path(image_path)
    target = Path(output) if output else source.with_name(f"{source.stem}.regenerated{source.suffix}")
    atomic_write_bytes(target, data)
    return target
