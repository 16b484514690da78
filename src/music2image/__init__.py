"""music2image: turn visual prompts (from music) into SDXL images, batched, resumable and reproducible."""

from .version import __version__  # noqa: E402,F401

from .errors import ExitStatus, Music2ImageError, PromptFileError, SettingsError  # noqa: E402
from .run import BatchImageGenerator  # noqa: E402
from .prompts import load_prompts, select_prompts  # noqa: E402
from .results import ImageResult, RunResult  # noqa: E402
from .settings import GenerationSettings  # noqa: E402

__all__ = [
    "BatchImageGenerator",
    "ExitStatus",
    "GenerationSettings",
    "ImageResult",
    "Music2ImageError",
    "PromptFileError",
    "RunResult",
    "SettingsError",
    "load_prompts",
    "select_prompts",
    "__version__",
]
