"""The command line: parses arguments, calls the library, turns domain errors into messages and exit codes.
flags.py makes the flags (the generation ones from settings.py), commands.py runs them."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
import threading

from ..errors import ExitStatus, Music2ImageError
from ..outputs.files import DEFAULT_FILES, Files
from ..prompts import DEFAULT_PROMPTS_FILE
from ..settings import GenerationSettings, declared_settings, default_of, flag_of
from ..version import __version__
from . import commands
from .flags import RUN_PROMPTS_NAME, _int, _positive_int, add_generation_flags, add_progress_flag, add_prompt_flags

__all__ = ["build_parser", "generate_flags_table", "main", "main_exit"]

EXIT_CODES_HELP = """exit codes:
  0    every image succeeded
  1    the run finished but some images failed (see the log), or results could not be written (disk full)
  2    bad input or usage: nothing was written
  130  interrupted (Ctrl-C / SIGTERM): run the same command again to resume
  141  the reader of the output went away (`| head`): nothing is wrong, nothing was lost
"""


PROMPTS_EXIT_CODES_HELP = """exit codes:
  0    the prompts file was written (audio that could not be analysed is a skipped sample: see the warnings)
  1    no audio file gave prompts, the file could not be written, or the --llm service failed mid-run
       (its answers so far are cached: run the same command again)
  2    bad input or usage (missing or unsupported audio, a bad flag, --output holds other prompts):
       nothing was written
  130  interrupted (Ctrl-C / SIGTERM): nothing was written; run the same command again
"""

EVALUATE_EXIT_CODES_HELP = """exit codes:
  0    the evaluation was written to OUTPUT_DIR/evaluation (unreadable images are left out: see the warnings)
  1    it could not be written (disk full)
  2    bad input or usage (not an output folder, no successful image, a folder it cannot write to, a CLIP model
       that does not load, a bad flag): nothing was written
  130  interrupted (Ctrl-C / SIGTERM): run the same command again
  141  the reader of the output went away (`| head`): nothing is wrong, nothing was lost
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not a usage dump, and no abbreviations: `--output`
    must not silently mean `--output-dir`."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(generate_prog: str | None = None) -> argparse.ArgumentParser:
    """The whole command line. `generate_prog`: the name `generate` calls itself in its help and errors
    (the seed's script, generate_images_from_prompts.py, is `generate` under its own name)."""
    parser = _Parser(prog=generate_prog or "music2image", description="Turn visual prompts (from music) into SDXL images.",
                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"music2image {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of errors (for developers)")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    generate = subcommands.add_parser("generate", help="generate images from a visual-prompts file",
                                   **({"prog": generate_prog} if generate_prog else {}),
                                   description="Generate one image per prompt of a visual-prompts file.",
                                   epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generation_flags(generate)
    generate.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                          help="show the full traceback of errors (for developers)")
    generate.set_defaults(func=commands.cmd_generate)

    show = subcommands.add_parser(
        "show", help="print the recipe inside an image made by music2image",
        description="Print the recipe inside an image made by music2image: its A1111 `parameters` text, then the "
                    "full recipe as JSON (models, every setting, seed, sample and prompt, library versions).")
    show.add_argument("image")
    show.add_argument("--json", action="store_true", help="only the recipe, as JSON")
    show.set_defaults(func=commands.cmd_show)

    regenerate = subcommands.add_parser(
        "regenerate", help="make an image again from the recipe inside it",
        description="Make an image again from the recipe inside it: byte-identical on the same device and library "
                    "versions. The model named in the recipe is loaded (a single-file checkpoint must still have "
                    "the same sha256).")
    regenerate.add_argument("image")
    regenerate.add_argument("--output", help="where to write it (default: IMAGE.regenerated.png next to it)")
    regenerate.add_argument("--device", help="default: the device it was made on (byte-identical there)")
    regenerate.set_defaults(func=commands.cmd_regenerate)

    grid = subcommands.add_parser(
        "grid", help="contact sheets: one per sample, plus an overview (OUTPUT_DIR/grids)",
        description="Write contact sheets into OUTPUT_DIR/grids: one per sample (its images in prompt order, "
                    "labelled with prompt id, mode and temperature) and an overview of every sample.")
    grid.add_argument("output_dir")
    grid.add_argument("--thumb-size", type=_positive_int, default=256, help="tile size in pixels (default: %(default)s)")
    grid.add_argument("--overview-thumb-size", type=_positive_int, default=128,
                      help="tile size in the overview pages (default: %(default)s)")
    grid.add_argument("--samples-per-page", type=_positive_int, default=25,
                      help="samples per overview page, overview_001.png, ... (default: %(default)s)")
    grid.set_defaults(func=commands.cmd_grid)

    gallery = subcommands.add_parser(
        "gallery", help="a static index.html in the output folder (works offline)",
        description="Write OUTPUT_DIR/index.html, a static gallery that works offline from file://: one row per "
                    "sample, convergent and divergent side by side, a mode filter, cached thumbnails.")
    gallery.add_argument("output_dir")
    gallery.add_argument("--thumb-size", type=_positive_int, default=256, help="thumbnail size (default: %(default)s)")
    gallery.add_argument("--samples-per-page", type=_positive_int, default=50,
                         help="samples per page; index.html is the first (default: %(default)s)")
    gallery.set_defaults(func=commands.cmd_gallery)

    summary = subcommands.add_parser(
        "summary", help="success rate, by mode, by sample and failures, as a table",
        description="Print an output folder's summary as a table: success rate, counts by mode and by sample, "
                    "failures with their reasons (--json: the summary file itself).")
    summary.add_argument("output_dir")
    summary.add_argument("--json", action="store_true", help="the summary JSON, for machines")
    summary.set_defaults(func=commands.cmd_summary)

    prompts = subcommands.add_parser(
        "prompts", help="analyse music and write a visual-prompts file",
        description="Analyse audio files (wav, flac, ogg, mp3, aiff) or folders of them and write visual prompts in "
                    "the schema `generate` reads.", epilog=PROMPTS_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prompts.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders, or an upstream .npy dataset")
    prompts.add_argument("--output", default=DEFAULT_PROMPTS_FILE, help="the visual-prompts JSON (default: %(default)s)")
    add_prompt_flags(prompts)
    prompts.add_argument("--seed", type=_int, default=GenerationSettings().seed,
                         help="prompt sampling seed; each prompt's comes from (seed, sample_idx, prompt_id) (default: %(default)s)")
    prompts.add_argument("--overwrite", action="store_true", help="replace an existing, different --output file")
    prompts.add_argument("--quiet", action="store_true", help="no progress bar; only warnings and errors")
    add_progress_flag(prompts)
    prompts.set_defaults(func=commands.cmd_prompts)

    run = subcommands.add_parser(
        "run", help="music to images in one command: `prompts`, then `generate`",
        description="Analyse the audio, write the visual prompts to --prompts-file (default: "
                    f"OUTPUT_DIR/{RUN_PROMPTS_NAME}), then generate the images. Every `generate` flag works here; "
                    "running it again resumes.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files, folders, or an upstream .npy dataset")
    add_generation_flags(run, prompts_default=None,
                         prompts_help=f"the visual-prompts JSON it writes, then reads (default: OUTPUT_DIR/{RUN_PROMPTS_NAME})")
    add_prompt_flags(run)
    run.set_defaults(func=commands.cmd_run)

    from ..evaluation import DEFAULT_CLIP_MODEL

    evaluate = subcommands.add_parser(
        "evaluate", help="measure an output folder: diversity, CLIP scores, colour vs music (OUTPUT_DIR/evaluation)",
        description="Measure the images of an output folder (CLIP embeddings, CIELAB colour) and answer: are divergent "
                    "images more diverse than convergent ones, do images follow their prompts, does colour follow "
                    "the music? Writes OUTPUT_DIR/evaluation/{images.csv, samples.csv, evaluation.json, report.html}.",
        epilog=EVALUATE_EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("output_dir")
    evaluate.add_argument("--clip-model", default=DEFAULT_CLIP_MODEL,
                          help="CLIP hub id, local folder, or `tiny` (offline, random) (default: %(default)s)")
    evaluate.add_argument("--prompts-file", help="where the musical features are (default: the log's prompts_file)")
    evaluate.add_argument("--batch-size", type=_positive_int, help="images per CLIP call (default: 64 on a GPU, 8 on a CPU)")
    evaluate.add_argument("--bootstrap", type=_int, default=2000, help="resamples per confidence interval (default: %(default)s)")
    evaluate.add_argument("--seed", type=_int, default=0, help="seed of the bootstrap (default: %(default)s)")
    evaluate.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N (default: %(default)s)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar; only warnings and errors")
    evaluate.set_defaults(func=commands.cmd_evaluate)

    tiny = subcommands.add_parser(
        "make-tiny-model", help="write the tiny random SDXL (base + refiner) and CLIP used for offline tests",
        description="Write the tiny random SDXL base (DIRECTORY/base) and refiner (DIRECTORY/refiner) that tests "
                    "and offline runs use, the same as single-file checkpoints (base.safetensors, "
                    "refiner.safetensors), and a tiny random CLIP (DIRECTORY/clip) for `evaluate`. Its images are "
                    "coloured noise, by design.")
    tiny.add_argument("directory", help="folder to write base/, refiner/ and clip/ into")
    tiny.set_defaults(func=commands.cmd_make_tiny_model)
    return parser


class _TerminalSafeFormatter(logging.Formatter):
    """Warnings name files, and a file name can hold escape sequences (`\\x1b[2J` clears the screen): shown
    escaped, never sent to the terminal. A line break is the message's own where its text has one, escaped where a
    value put into it has one: a file named "a<newline>b.wav" split its "skipping" warning over two lines, the second
    starting with "b.wav", which read as another file."""

    def format(self, record: logging.LogRecord) -> str:
        from ..image_text import terminal_safe

        if isinstance(record.args, tuple) and record.args:
            record = logging.makeLogRecord(record.__dict__)  # other handlers see the record as it was
            record.args = tuple(terminal_safe(str(arg), keep="\t") if isinstance(arg, (str, os.PathLike)) else arg
                                for arg in record.args)
        return terminal_safe(super().format(record))


def _configure_logging(quiet: bool) -> None:
    logger = logging.getLogger("music2image")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in [h for h in logger.handlers if getattr(h, "_music2image_cli", False)]:
        logger.removeHandler(old)  # main() may run many times in one process (tests, notebooks)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalSafeFormatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    handler._music2image_cli = True
    logger.addHandler(handler)


def main(argv: list[str] | None = None, *, files: Files = DEFAULT_FILES, generate_prog: str | None = None) -> int:
    """The command line. `files`: the write path of generating commands (tests pass one that crashes in it).
    `generate_prog`: the name `generate` goes by in its help and errors (the seed's script passes its own)."""
    # Ctrl-C/SIGTERM are ours from the first moment, before torch is imported or any model loads.
    # A path that is not UTF-8 (os.fsdecode's lone surrogates) is printed as \\xNN, not a UnicodeEncodeError after
    # the work is done: stdout is strict under a UTF-8 locale (stderr already escapes).
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    with commands.stop_on_signals(threading.Event()) as signals:
        args = None
        try:
            parser = build_parser(generate_prog)
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help, --version, or a usage error (already printed as one line)
                return int(exc.code or 0)
            args.files, args.stop, args.signals = files, signals.stop, signals
            # Under `accelerate launch` only the main process (RANK 0) talks; the others report warnings and errors.
            _configure_logging(getattr(args, "quiet", False) or os.environ.get("RANK", "0") != "0")
            status = int(args.func(args))
            sys.stdout.flush()  # here, so that a reader gone away (`| head`) is seen below, not at interpreter exit
            return status
        except BrokenPipeError:
            # The reader closed the pipe (`music2image show IMAGE | head`): what it wanted, it has. Point stdout at
            # /dev/null so the interpreter's last flush has nowhere to fail; exit as a process killed by SIGPIPE does.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # a stdout without a file descriptor (a test's capture)
                pass
            return int(ExitStatus.BROKEN_PIPE)
        except Music2ImageError as exc:
            if getattr(args, "traceback", False):
                raise
            if not getattr(exc, "shared", False) or os.environ.get("RANK", "0") == "0":  # one message per launch
                from ..image_text import terminal_safe

                kind = "" if exc.exit_status == ExitStatus.INTERRUPTED else "error: "
                print(f"music2image: {kind}{terminal_safe(str(exc))}", file=sys.stderr)  # it may quote a file name
            return int(exc.exit_status)
        except KeyboardInterrupt:
            if getattr(args, "traceback", False):
                raise
            print("music2image: interrupted; run the same command again to resume", file=sys.stderr)
            return int(ExitStatus.INTERRUPTED)


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main())


def generate_flags_table() -> str:
    """The README's `generate` flags table, made from the parser (and so from the settings' declarations):
    `python -c "from music2image.cli import generate_flags_table; print(generate_flags_table())"`."""
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
