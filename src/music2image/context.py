"""RunContext: everything one run was asked to do, fixed for the whole run (run.py and batches.py read it)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .outputs.files import DEFAULT_FILES, Files
from .settings import GenerationSettings


@dataclass(frozen=True)
class RunContext:
    """Everything one run was asked to do; fixed for the whole run."""

    prompts_file: str | os.PathLike | dict
    output_dir: Path
    settings: GenerationSettings
    limit: int | None = None
    samples: int | None = None
    sample_range: tuple[int, int] | None = None
    save_images: bool = True
    overwrite: bool = False
    replace_changed: bool = False  # remake finished images whose prompt text the prompts file changed
    verify: bool = False  # re-hash every finished image instead of trusting its recorded size and mtime
    progress: bool | None = None  # None: a progress bar when stderr is a terminal
    stop: threading.Event = field(default_factory=threading.Event)  # set it to stop after the batch in flight
    files: Files = DEFAULT_FILES  # the write path (tests pass one that crashes inside it)
    progress_interval: float = 30.0  # off a terminal: seconds between progress lines (and one at each tenth)

    @property
    def prompts_name(self) -> str:
        return "<dict>" if isinstance(self.prompts_file, dict) else str(self.prompts_file)
