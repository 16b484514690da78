"""The command line: parses arguments, calls the library, turns domain errors into messages and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .errors import ExitStatus, Music2ImageError, SettingsError
from .outputs.files import DEFAULT_FILES, Files
from .prompts import DEFAULT_PROMPTS_FILE
from .settings import GenerationSettings, Setting, declared_settings, default_of, flag_of
from .version import __version__

EXIT_CODES_HELP = """exit codes:
  0    every image succeeded
  1    the run finished but some images failed (see the log), or results could not be written (disk full)
  2    bad input or usage: nothing was written
  130  interrupted (Ctrl-C / SIGTERM): run the same command again to resume
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump."""

    def error(self, message):
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _sample_range(text: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    try:
        first = int(start) if start else 0
        last = int(stop) if stop else 10**9
    except ValueError:
        first = last = -1
    if not sep or first < 0 or last <= first:
        raise argparse.ArgumentTypeError(f"{text!r} must be A:B with 0 <= A < B (sample_idx A up to, not including, B)")
    return (first, last)


def _setting_flag(parser: argparse.ArgumentParser, name: str, declared: Setting) -> None:
    """One GenerationSettings field as a flag, from its declaration in settings.py."""
    default = default_of(name)
    kwargs = dict(dest=name, default=default, help=declared.help)
    if isinstance(default, bool):
        kwargs["action"] = "store_true"
    else:
        kind = type(default) if default is not None else str
        kwargs["type"] = _checked(declared.parse) if declared.parse else _TYPES.get(kind, str)
        if declared.choices:
            kwargs["choices"] = declared.choices
        if declared.metavar:
            kwargs["metavar"] = declared.metavar
        shown = declared.default_text or default
        kwargs["help"] = f"{declared.help} (default: {shown})"
    parser.add_argument(flag_of(name), **kwargs)


def _checked(parse):
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


_TYPES = {int: lambda text: _int(text), float: lambda text: _float(text), str: str}


def _add_generation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts-file", default=DEFAULT_PROMPTS_FILE, help="visual-prompts JSON (default: %(default)s)")
    p.add_argument("--output-dir", default="images",
                   help="where images, log and summary go, relative to the working directory (default: %(default)s)")
    p.add_argument("--limit", type=_positive_int, help="at most N prompts (after sample selection)")
    p.add_argument("--samples", type=_positive_int, help="only the first N samples of the file")
    p.add_argument("--sample-range", type=_sample_range, metavar="A:B",
                   help="only samples with A <= sample_idx < B (for batch sets: 0:20, 20:40, ...)")
    p.add_argument("--no-save", action="store_true", help="run everything and write both JSON files, but no images")
    for name, declared in declared_settings().items():
        _setting_flag(p, name, declared)
    p.add_argument("--overwrite", action="store_true",
                   help="regenerate everything, even where the folder holds another recipe's images")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only warnings and errors")


def _add_prompt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--convergent", type=_int, default=3, help="convergent prompts per sample (default: %(default)s)")
    p.add_argument("--divergent", type=_int, default=2, help="divergent prompts per sample (default: %(default)s)")
    p.add_argument("--convergent-temperature", type=_float, default=0.4,
                   help="sampling temperature of convergent prompts; 0 = always the best match (default: %(default)s)")
    p.add_argument("--divergent-temperature", type=_float, default=0.8,
                   help="sampling temperature of divergent prompts (default: %(default)s)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read upstream .npy datasets (np.load with pickle: can run code from the file; trusted files only)")
    p.add_argument("--text-model", metavar="DIR",
                   help="a local transformers causal-LM folder that writes the sentences (default: the built-in "
                        "descriptor vocabulary)")
    p.add_argument("--llm", choices=("openai", "anthropic"),
                   help="a chat model writes the prompts: openai = any OpenAI-compatible endpoint (key from "
                        "OPENAI_API_KEY), anthropic = Claude (key from ANTHROPIC_API_KEY)")
    p.add_argument("--llm-model", metavar="NAME", help="the chat model, e.g. llama3.2, gpt-4o-mini, claude-sonnet-4-5")
    p.add_argument("--llm-base-url", metavar="URL",
                   help="the API's base URL, e.g. http://localhost:11434/v1 for Ollama (default: the provider's)")
    p.add_argument("--llm-timeout", type=_float, default=60.0, metavar="SECONDS",
                   help="seconds per request before it is retried (default: %(default)s)")
    p.add_argument("--llm-concurrency", type=_int, default=4, metavar="N", help="requests in flight at once (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="music2image", description="Turn visual prompts (from music) into SDXL images.",
                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"music2image {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of errors (for developers)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    generate = commands.add_parser("generate", help="generate images from a visual-prompts file",
                                   description="Generate one image per prompt of a visual-prompts file.",
                                   epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_generation_flags(generate)
    generate.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                          help="show the full traceback of errors (for developers)")
    generate.set_defaults(func=_cmd_generate)

    show = commands.add_parser("show", help="print the recipe inside an image made by music2image")
    show.add_argument("image")
    show.add_argument("--json", action="store_true", help="only the recipe, as JSON")
    show.set_defaults(func=_cmd_show)

    regenerate = commands.add_parser("regenerate", help="make an image again from the recipe inside it")
    regenerate.add_argument("image")
    regenerate.add_argument("--output", help="where to write it (default: IMAGE.regenerated.png next to it)")
    regenerate.add_argument("--device", help="default: the device it was made on (byte-identical there)")
    regenerate.set_defaults(func=_cmd_regenerate)

    grid = commands.add_parser("grid", help="contact sheets: one per sample, plus an overview (OUTPUT_DIR/grids)")
    grid.add_argument("output_dir")
    grid.add_argument("--thumb-size", type=_positive_int, default=256, help="tile size in pixels (default: %(default)s)")
    grid.add_argument("--overview-thumb-size", type=_positive_int, default=128,
                      help="tile size in the overview (default: %(default)s)")
    grid.set_defaults(func=_cmd_grid)

    gallery = commands.add_parser("gallery", help="a static index.html in the output folder (works offline)")
    gallery.add_argument("output_dir")
    gallery.add_argument("--thumb-size", type=_positive_int, default=256, help="thumbnail size (default: %(default)s)")
    gallery.set_defaults(func=_cmd_gallery)

    summary = commands.add_parser("summary", help="success rate, by mode, by sample and failures, as a table")
    summary.add_argument("output_dir")
    summary.add_argument("--json", action="store_true", help="the summary JSON, for machines")
    summary.set_defaults(func=_cmd_summary)

    prompts = commands.add_parser(
        "prompts", help="analyse music and write a visual-prompts file",
        description="Analyse audio files (wav, flac, ogg, mp3, aiff) or folders of them and write visual prompts in "
                    "the schema `generate` reads.", epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prompts.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders, or an upstream .npy dataset")
    prompts.add_argument("--output", default=DEFAULT_PROMPTS_FILE, help="the visual-prompts JSON (default: %(default)s)")
    _add_prompt_flags(prompts)
    prompts.add_argument("--seed", type=_int, default=GenerationSettings().seed,
                         help="prompt sampling seed; each prompt's comes from (seed, sample_idx, prompt_id) (default: %(default)s)")
    prompts.add_argument("--overwrite", action="store_true", help="replace an existing, different --output file")
    prompts.add_argument("--quiet", action="store_true", help="no progress bar; only warnings and errors")
    prompts.set_defaults(func=_cmd_prompts)

    run = commands.add_parser(
        "run", help="music to images in one command: `prompts`, then `generate`",
        description="Analyse the audio, write the visual prompts to --prompts-file, then generate the images. "
                    "Every `generate` flag works here; running it again resumes.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders, or an upstream .npy dataset")
    _add_generation_flags(run)
    _add_prompt_flags(run)
    run.set_defaults(func=_cmd_run)

    tiny = commands.add_parser("make-tiny-model", help="write the tiny random SDXL (base + refiner) used for offline tests")
    tiny.add_argument("directory", help="folder to write base/ and refiner/ into")
    tiny.set_defaults(func=_cmd_make_tiny_model)
    return parser


def _configure_logging(quiet: bool) -> None:
    logger = logging.getLogger("music2image")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in [h for h in logger.handlers if getattr(h, "_music2image_cli", False)]:
        logger.removeHandler(old)  # main() may run many times in one process (tests, notebooks)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler._music2image_cli = True
    logger.addHandler(handler)


def _settings_from_args(args) -> GenerationSettings:
    return GenerationSettings(**{name: getattr(args, name) for name in declared_settings()})


def _cmd_generate(args) -> int:
    from .run import BatchImageGenerator

    generator = BatchImageGenerator(
        prompts_file=args.prompts_file,
        output_dir=args.output_dir,
        limit=args.limit,
        samples=args.samples,
        sample_range=args.sample_range,
        save_images=not args.no_save,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
        settings=_settings_from_args(args),
        stop=args.stop,
        files=args.files,
    )
    with _stop_on_signals(args.stop):
        result = generator.run()
    if result.process_index:  # under `accelerate launch`, the main process speaks for the launch
        return result.exit_status
    state = "interrupted" if result.interrupted else "done"
    print(
        f"{state}: {result.successful} succeeded, {result.failed} failed, "
        f"{result.total_prompts - len(result.images)} pending, {len(result.skipped_samples)} samples skipped "
        f"-> {result.log_path}"
    )
    return result.exit_status


def _write_prompts(args, output: str, overwrite: bool) -> dict:
    from .music import LLMSettings, PromptPlan, write_prompts_file

    plan = PromptPlan(convergent=args.convergent, divergent=args.divergent,
                      convergent_temperature=args.convergent_temperature,
                      divergent_temperature=args.divergent_temperature, seed=args.seed)
    if not args.llm and (args.llm_model or args.llm_base_url):
        raise SettingsError("--llm-model and --llm-base-url need --llm openai or --llm anthropic")
    llm = LLMSettings(args.llm, args.llm_model or "", args.llm_base_url, timeout=args.llm_timeout,
                      concurrency=args.llm_concurrency) if args.llm else None
    document = write_prompts_file(args.audio, output, plan, allow_pickle=args.allow_pickle, text_model=args.text_model,
                                  llm=llm, overwrite=overwrite, progress=not args.quiet and sys.stderr.isatty())
    meta = document["metadata"]
    prompts = sum(len(sample["prompts"]) for sample in document["samples"])
    print(f"prompts: {meta['total_samples'] - meta['skipped_samples']} samples, {prompts} prompts, "
          f"{meta['skipped_samples']} skipped -> {output}")
    return document


def _cmd_prompts(args) -> int:
    document = _write_prompts(args, args.output, args.overwrite)
    return ExitStatus.OK if document["metadata"]["skipped_samples"] < document["metadata"]["total_samples"] else ExitStatus.SOME_FAILED


def _cmd_run(args) -> int:
    from .engine import available_device, resolved_dtype_name

    # Check the image settings, and that they suit the device, before spending minutes on audio analysis
    # (the same checks `generate` makes before it loads a model).
    settings = _settings_from_args(args).validate()
    resolved_dtype_name(settings.dtype, available_device(settings.device), settings.offload)
    document = _write_prompts(args, args.prompts_file, args.overwrite)
    if not any(sample["prompts"] for sample in document["samples"]):
        print("music2image: no sample gave prompts (see the warnings above); no images to make", file=sys.stderr)
        return ExitStatus.SOME_FAILED
    return _cmd_generate(args)


def _cmd_show(args) -> int:
    import json

    from .regenerate import read_recipe

    document = read_recipe(args.image)
    parameters = document.pop("parameters", None)
    if not args.json and parameters:
        print(parameters)
        print()
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return ExitStatus.OK


def _cmd_regenerate(args) -> int:
    from .regenerate import regenerate_image

    print(f"written: {regenerate_image(args.image, args.output, args.device)}")
    return ExitStatus.OK


def _cmd_grid(args) -> int:
    from .report import make_grids

    written = make_grids(args.output_dir, args.thumb_size, args.overview_thumb_size)
    print(f"{len(written)} contact sheets in {written[-1].parent if written else args.output_dir}")
    return ExitStatus.OK


def _cmd_gallery(args) -> int:
    from .report import make_gallery

    print(f"gallery: {make_gallery(args.output_dir, args.thumb_size)}")
    return ExitStatus.OK


def _cmd_summary(args) -> int:
    import json
    from pathlib import Path

    from .outputs import SUMMARY_NAME
    from .report import read_json_file, summary_text

    if args.json:
        print(json.dumps(read_json_file(Path(args.output_dir) / SUMMARY_NAME), indent=2, ensure_ascii=False))
    else:
        print(summary_text(Path(args.output_dir)))
    return ExitStatus.OK


def _cmd_make_tiny_model(args) -> int:
    from .tiny import make_tiny_model

    path = make_tiny_model(args.directory)
    print(f"tiny SDXL written: --model {path / 'base'} --refiner-model {path / 'refiner'}\n"
          f"as single files: --model {path / 'base.safetensors'} --model-config {path / 'base'} "
          f"--refiner-model {path / 'refiner.safetensors'} --refiner-model-config {path / 'refiner'}")
    return ExitStatus.OK


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


def main(argv: list[str] | None = None, *, files: Files = DEFAULT_FILES) -> int:
    """The command line. `files`: the write path of generating commands (tests pass one that crashes in it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed as one line)
        return int(exc.code or 0)
    args.files, args.stop = files, threading.Event()
    # Under `accelerate launch` only the main process (RANK 0) talks; the others report warnings and errors.
    _configure_logging(getattr(args, "quiet", False) or os.environ.get("RANK", "0") != "0")
    try:
        return int(args.func(args))
    except Music2ImageError as exc:
        if args.traceback:
            raise
        if not getattr(exc, "shared", False) or os.environ.get("RANK", "0") == "0":  # one message per launch
            print(f"music2image: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        if args.traceback:
            raise
        print("music2image: interrupted; run the same command again to resume", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())


def generate_flags_table() -> str:
    """The README's `generate` flags table, made from the parser (and so from the settings' declarations):
    `python -c "from music2image.cli import generate_flags_table; print(generate_flags_table())"`."""
    import re

    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    declared = {flag_of(name): (name, setting) for name, setting in declared_settings().items()}
    for action in generate._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[-1]
        if flag in declared:
            name, setting = declared[flag]
            default, meaning = setting.default_text or default_of(name), setting.help
            plain = setting.default_text is not None
        else:
            default, meaning, plain = action.default, re.sub(r" \(default: %\(default\)s\)$", "", action.help), False
        if isinstance(default, bool) or default is None or default == argparse.SUPPRESS:
            default, plain = ("off" if action.nargs == 0 else "none"), True
        default = default if plain else f"`{default}`"
        rows.append(f"| `{flag}` | {default} | {meaning} |")
    return "\n".join(rows)
