"""The command line's flags: converters, and the `generate` flags made from the settings' declarations."""

from __future__ import annotations

import argparse

from ..prompts import DEFAULT_PROMPTS_FILE
from ..settings import GenerationSettings, Setting, declared_settings, default_of, flag_of


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _jobs(text: str) -> int | None:
    return None if text == "auto" else _positive_int(text)


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


RUN_PROMPTS_NAME = "visual_prompts.json"  # `run` writes its prompts here, inside --output-dir


def _seconds(text: str) -> float:
    value = _float(text)
    if not value > 0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds above 0")
    return value


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress-interval", type=_seconds, default=30.0, metavar="SECONDS",
                   help="off a terminal (nohup, SLURM, a pipe), a progress line this often and at each tenth of the work "
                        "(default: %(default)s)")


def add_generation_flags(p: argparse.ArgumentParser, prompts_default: str | None = DEFAULT_PROMPTS_FILE,
                         prompts_help: str = "visual-prompts JSON (default: %(default)s)") -> None:
    p.add_argument("--prompts-file", default=prompts_default, help=prompts_help)
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
    p.add_argument("--replace-changed", action="store_true",
                   help="remake finished images whose prompt text the prompts file changed (without it, such a "
                        "run stops before loading a model and lists them)")
    p.add_argument("--verify", action="store_true",
                   help="re-hash every finished image on resume (default: trust the size and mtime recorded "
                        "when it was written)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only warnings and errors")
    add_progress_flag(p)


def add_prompt_flags(p: argparse.ArgumentParser) -> None:
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
    # None: not given (refused without --llm), then music.llm_client.LLMSettings' defaults, which the help names
    # (not imported here: it would load the music stage for every command's start).
    p.add_argument("--llm-timeout", type=_float, metavar="SECONDS",
                   help="seconds per request before it is retried (default: 60)")
    p.add_argument("--llm-concurrency", type=_int, metavar="N", help="requests in flight at once (default: 4)")
    p.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                   help="processes analysing audio at once; auto: one per CPU, as free memory allows (default: auto)")
    p.add_argument("--no-analysis-cache", action="store_true",
                   help="do not keep each file's analysis beside the prompts file (OUTPUT_STEM.analysis-cache.jsonl), "
                        "which lets an interrupted run resume without analysing again")


def settings_from_args(args) -> GenerationSettings:
    return GenerationSettings(**{name: getattr(args, name) for name in declared_settings()})
