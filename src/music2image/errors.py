"""The few domain errors, each with a message written for a person, and the exit codes.

The library raises these; only the CLI turns them into messages and exit codes (httpie's ExitStatus idea).
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Exit codes of every music2image command (documented in the README and `--help`)."""

    OK = 0  # every image succeeded
    SOME_FAILED = 1  # the run finished but some images failed, or it had to stop (disk full, ...)
    USAGE = 2  # bad input or usage: nothing was written
    INTERRUPTED = 130  # stopped by SIGINT/SIGTERM; re-run the same command to resume
    BROKEN_PIPE = 141  # the reader of stdout went away (`show IMAGE | head`): 128 + SIGPIPE, as a shell reports it


class Music2ImageError(Exception):
    """Base of every error we expect a user to see. `str(error)` is the whole message."""

    exit_status = ExitStatus.USAGE


class PromptFileError(Music2ImageError):
    """The prompts file is missing, unreadable or does not follow the schema.

    `problems` lists every problem found, each as "json.path: what is wrong, got VALUE".
    """

    def __init__(self, source: str, problems: list[str], hint: str | None = None):
        self.source = source
        self.problems = list(problems)
        self.hint = hint
        head = f"{source}: " + ("1 problem" if len(problems) == 1 else f"{len(problems)} problems")
        lines = [head] + [f"  {problem}" for problem in problems]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class SettingsError(Music2ImageError):
    """A generation setting or flag value is invalid (every bad one is listed)."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ModelLoadError(Music2ImageError):
    """A model could not be found or loaded (before anything was written)."""


class OutputDirError(Music2ImageError):
    """The output directory is locked by another run, or holds results made with another recipe."""


class Interrupted(Music2ImageError):
    """Ctrl-C/SIGTERM arrived before the first image: the run stopped before writing anything (its lock released).
    Re-run the same command."""

    exit_status = ExitStatus.INTERRUPTED


class DiskError(Music2ImageError):
    """Writing results failed (disk full, permission denied). The journal stays intact; re-run to resume."""

    exit_status = ExitStatus.SOME_FAILED


class AudioInputError(Music2ImageError):
    """The audio given to `music2image prompts` cannot be used at all (missing, unsupported, unsafe)."""


class AnalysisProcessError(Music2ImageError):
    """A worker process analysing audio died (killed for memory, a crash in a decoding library). The analyses made
    so far are kept in the analysis cache; re-run to resume."""

    exit_status = ExitStatus.SOME_FAILED


class LLMError(Music2ImageError):
    """An --llm writer cannot start: client not installed, no key, key refused, unknown model, server unreachable.
    Raised before any audio is analysed, so nothing is lost."""


class LLMServiceError(Music2ImageError):
    """The LLM service failed in the middle of a run (after its retries). Answers so far are cached; re-run to resume."""

    exit_status = ExitStatus.SOME_FAILED
