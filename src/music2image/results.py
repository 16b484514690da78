"""What a run returns: one record per finished image and the run's counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ExitStatus
from .records import ImageRecord
from .prompts import SkippedSample

# The seed-compatible name of an image's result: the journal's typed record (see records.ImageRecord).
ImageResult = ImageRecord


@dataclass
class RunResult:
    """What `BatchImageGenerator.run()` returns."""

    output_dir: str
    images: list[ImageRecord]  # in prompts-file order, one per finished job (this run or an earlier one)
    skipped_samples: list[SkippedSample]
    total_prompts: int
    generated_now: int  # made by this run (the rest were already done)
    interrupted: bool = False
    device: str = ""
    log_path: str | None = None  # written by the main process only
    summary_path: str | None = None
    process_index: int = 0  # under `accelerate launch`: which process this result is from
    total_images: int | None = None  # selected images (prompts x --images-per-prompt); None: one per prompt

    @property
    def pending(self) -> int:
        return (self.total_prompts if self.total_images is None else self.total_images) - len(self.images)
    # The folder's other finished images (outside this selection): in the log and summary, not in the counts
    # above, which are this selection's.
    kept: list[ImageRecord] = field(default_factory=list)

    @property
    def successful(self) -> int:
        return sum(1 for r in self.images if r.ok)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.images if not r.ok)

    @property
    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        return ExitStatus.SOME_FAILED if self.failed else ExitStatus.OK
