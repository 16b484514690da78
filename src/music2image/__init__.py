"""music2image: turn visual prompts (from music) into SDXL images, batched, resumable and reproducible."""

__version__ = "0.1.0"

from .errors import ExitStatus, Music2ImageError, PromptFileError, SettingsError  # noqa: E402
from .evaluate import EvaluationResult, evaluate  # noqa: E402  (the function; its package stays importable)
from .generator import BatchImageGenerator  # noqa: E402
from .prompts import load_prompts, select_prompts  # noqa: E402
from .results import ImageResult, RunResult  # noqa: E402
from .settings import GenerationSettings  # noqa: E402

__all__ = [
    "BatchImageGenerator",
    "EvaluationResult",
    "ExitStatus",
    "GenerationSettings",
    "ImageResult",
    "Music2ImageError",
    "PromptFileError",
    "RunResult",
    "SettingsError",
    "evaluate",
    "load_prompts",
    "select_prompts",
    "__version__",
]
