"""The audio → visual-prompts stage (see stage.py for the way through, sources.py, features.py, mapping.py, writer.py).

    >>> from music2image.music import write_prompts_file
    >>> write_prompts_file(["music/"], "generated_prompts/visual_prompts_complete.json")
"""

from .llm import LLMSettings
from .mapping import EMOTION_SLOTS
from .sources import collect_sources
from .stage import (
    DEFAULT_PROMPT_SEED,
    PromptPlan,
    PromptRecord,
    PromptsDocument,
    SampleRecord,
    build_document,
    build_prompts,
    sample_prompts,
    write_prompts_file,
)

__all__ = ["DEFAULT_PROMPT_SEED", "LLMSettings", "PromptPlan", "PromptRecord", "PromptsDocument", "SampleRecord", "build_document",
           "build_prompts", "sample_prompts", "write_prompts_file", "collect_sources", "EMOTION_SLOTS"]
