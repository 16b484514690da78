"""What each command does: one library call each, its result printed for a person."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from pathlib import Path

from ..errors import ExitStatus, SettingsError
from ..outputs.files import OutputLock
from .flags import RUN_PROMPTS_NAME, settings_from_args


def cmd_generate(args) -> int:
    # From here a first Ctrl-C/SIGTERM stops the run where nothing is lost (before or right after loading the
    # models, or after the batch in flight); it is set before torch is imported, which takes seconds.
    args.signals.graceful = True
    from ..run import BatchImageGenerator

    generator = BatchImageGenerator(
        prompts_file=args.prompts_file,
        output_dir=args.output_dir,
        limit=args.limit,
        samples=args.samples,
        sample_range=args.sample_range,
        save_images=not args.no_save,
        overwrite=args.overwrite,
        replace_changed=args.replace_changed,
        verify=args.verify,
        progress=False if args.quiet else None,
        progress_interval=args.progress_interval,
        settings=settings_from_args(args),
        stop=args.stop,
        files=args.files,
    )
    result = generator.run()
    if result.process_index:  # under `accelerate launch`, the main process speaks for the launch
        return result.exit_status
    state = "interrupted" if result.interrupted else "done"
    print(
        f"{state}: {result.successful} succeeded, {result.failed} failed, "
        f"{result.pending} pending, {len(result.skipped_samples)} samples skipped "
        f"-> {result.log_path}"
    )
    return result.exit_status


def _write_prompts(args, output: str, overwrite: bool, output_flag: str = "--output"):
    from ..music import LLMSettings, PromptPlan, write_prompts_file

    plan = PromptPlan(convergent=args.convergent, divergent=args.divergent,
                      convergent_temperature=args.convergent_temperature,
                      divergent_temperature=args.divergent_temperature, seed=args.seed)
    given = [flag for flag, value in (("--llm-model", args.llm_model), ("--llm-base-url", args.llm_base_url),
                                      ("--llm-timeout", args.llm_timeout), ("--llm-concurrency", args.llm_concurrency))
             if value is not None]
    if not args.llm and given:
        raise SettingsError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --llm openai or --llm anthropic")
    tuning = {name: value for name, value in (("timeout", args.llm_timeout), ("concurrency", args.llm_concurrency))
              if value is not None}
    llm = LLMSettings(args.llm, args.llm_model or "", args.llm_base_url, **tuning) if args.llm else None
    document = write_prompts_file(args.audio, output, plan, allow_pickle=args.allow_pickle, text_model=args.text_model,
                                  llm=llm, overwrite=overwrite, jobs=args.jobs,
                                  cache_analyses=not args.no_analysis_cache, output_flag=output_flag,
                                  progress=not args.quiet,
                                  progress_interval=args.progress_interval)
    print(f"prompts: {len(document.samples) - document.skipped} samples, {document.prompt_count} prompts, "
          f"{document.skipped} skipped -> {output}")
    return document


def cmd_prompts(args) -> int:
    document = _write_prompts(args, args.output, args.overwrite)
    return ExitStatus.OK if document.skipped < len(document.samples) else ExitStatus.SOME_FAILED


def cmd_run(args) -> int:
    from ..engine import available_device, resolved_dtype_name

    # Check the image settings, and that they suit the device, before spending minutes on audio analysis
    # (the same checks `generate` makes before it loads a model).
    settings = settings_from_args(args).validate()
    resolved_dtype_name(settings.dtype, available_device(settings.device), settings.offload)
    if args.prompts_file is None:  # the folder holds what made its images: two runs never share a prompts file
        args.prompts_file = str(Path(args.output_dir) / RUN_PROMPTS_NAME)
        if Path(args.output_dir).is_dir():  # a folder another run is writing: refused before any audio is read
            OutputLock(Path(args.output_dir)).acquire().release()
    document = _write_prompts(args, args.prompts_file, args.overwrite, "--prompts-file")
    if not document.prompt_count:
        print("music2image: no sample gave prompts (see the warnings above); no images to make", file=sys.stderr)
        return ExitStatus.SOME_FAILED
    return cmd_generate(args)


def cmd_show(args) -> int:
    import json

    from ..image_text import terminal_safe
    from ..regenerate import read_recipe

    document = read_recipe(args.image)
    parameters = document.pop("parameters", None)
    # The text is the file's: control characters (terminal escape sequences) are shown escaped, never sent.
    if not args.json and parameters:
        print(terminal_safe(parameters))
        print()
    print(terminal_safe(json.dumps(document, indent=2, ensure_ascii=False)))
    return ExitStatus.OK


def cmd_regenerate(args) -> int:
    from ..regenerate import regenerate_image

    print(f"written: {regenerate_image(args.image, args.output, args.device)}")
    return ExitStatus.OK


def cmd_grid(args) -> int:
    from ..report import make_grids

    written = make_grids(args.output_dir, args.thumb_size, args.overview_thumb_size, args.samples_per_page)
    pages = sum(path.name.startswith("overview_") for path in written)
    print(f"{len(written) - pages} contact sheets and {pages} overview pages in "
          f"{written[-1].parent if written else args.output_dir}")
    return ExitStatus.OK


def cmd_gallery(args) -> int:
    from ..report import make_gallery

    print(f"gallery: {make_gallery(args.output_dir, args.thumb_size, args.samples_per_page)}")
    return ExitStatus.OK


def cmd_summary(args) -> int:
    import json
    from pathlib import Path

    from ..image_text import terminal_safe
    from ..outputs import SUMMARY_NAME
    from ..report import read_json_file, summary_text

    if args.json:
        document = read_json_file(Path(args.output_dir) / SUMMARY_NAME)
        print(terminal_safe(json.dumps(document, indent=2, ensure_ascii=False)))
    else:
        print(summary_text(Path(args.output_dir)))
    return ExitStatus.OK


def cmd_evaluate(args) -> int:
    from ..evaluation import evaluate

    result = evaluate(args.output_dir, args.clip_model, prompts_file=args.prompts_file, batch_size=args.batch_size,
                      bootstrap=args.bootstrap, seed=args.seed, device=args.device,
                      progress=False if args.quiet else None)
    print(f"evaluated {len(result.images)} images ({result.embedded_now} embedded now, "
          f"{result.embeddings_from_cache} from the cache) -> {result.evaluation_dir}")
    if result.headline:
        print(result.headline)
    return ExitStatus.OK


def cmd_make_tiny_model(args) -> int:
    from ..engine.load import quiet_libraries
    from ..tiny import write_tiny_model

    quiet_libraries()  # what was written is said below: no library notices or "Writing model shards" bars
    path = write_tiny_model(args.directory)
    print(f"tiny SDXL written: --model {path / 'base'} --refiner-model {path / 'refiner'}\n"
          f"as single files: --model {path / 'base.safetensors'} --model-config {path / 'base'} "
          f"--refiner-model {path / 'refiner.safetensors'} --refiner-model-config {path / 'refiner'}\n"
          f"tiny CLIP written: --clip-model {path / 'clip'}")
    return ExitStatus.OK


class stop_on_signals:
    """SIGINT and SIGTERM alike, from the moment a command starts (main() installs it first thing).

    Until `graceful` is set, a signal stops at once (KeyboardInterrupt; every write is atomic, so nothing is torn).
    `generate` (and `run`, once its prompts are written) sets it: then the first signal sets `stop`, and the run
    stops where nothing is lost: before the models load, right after they loaded, or once the batch in flight is
    abandoned. A second signal stops at once."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.graceful = False
        self.previous = {}

    def _handle(self, signum, frame):
        if not self.graceful or self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        logging.getLogger("music2image").warning(
            "%s received: stopping (press Ctrl-C again to stop at once)", signal.Signals(signum).name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


