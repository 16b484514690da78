"""Structured results of a run, and the two JSON documents the seed's users read (log and summary).

The seed's keys are all kept, with the same names and meanings; ours are added beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ExitStatus
from .outputs import now_iso
from .plan import Job
from .prompts import SkippedSample


@dataclass
class ImageResult:
    job: Job
    status: str  # "success" | "failed"
    image_path: str | None  # relative to the output dir; None with --no-save or on failure
    error: str | None = None
    error_type: str | None = None
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    token_count: int | None = None
    prompt_encoding: str | None = None  # "full" (fits 77 tokens), "chunked" or "truncated"

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @classmethod
    def from_record(cls, job: Job, record: dict) -> "ImageResult":
        return cls(
            job=job,
            status=record["status"],
            image_path=record.get("image_path"),
            error=record.get("error"),
            error_type=record.get("error_type"),
            seconds=record.get("seconds"),
            notes=list(record.get("notes") or []),
            token_count=record.get("token_count"),
            prompt_encoding=record.get("prompt_encoding"),
        )

    def log_entry(self) -> dict:
        job = self.job
        return {
            "sample_idx": job.sample_idx,
            "prompt_id": job.prompt_id,
            "mode": job.mode,
            "temperature": job.temperature,
            "visual_prompt": job.visual_prompt,
            "image_path": self.image_path,
            "status": self.status,
            "seed": job.seed,
            "error": self.error,
            "error_type": self.error_type,
            "generation_time": None if self.seconds is None else round(self.seconds, 3),
            "recipe_key": job.recipe_key,
            "token_count": self.token_count,
            "prompt_encoding": self.prompt_encoding,
        }


@dataclass
class RunResult:
    """What `BatchImageGenerator.run()` returns."""

    output_dir: str
    images: list[ImageResult]  # in prompts-file order, one per finished job (this run or an earlier one)
    skipped_samples: list[SkippedSample]
    total_prompts: int
    generated_now: int  # made by this run (the rest were already done)
    interrupted: bool = False
    device: str = ""
    log_path: str | None = None  # written by the main process only
    summary_path: str | None = None
    process_index: int = 0  # under `accelerate launch`: which process this result is from

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


def log_document(result: RunResult, prompts_file: str, settings, metadata_extra: dict) -> dict:
    metadata = {
        "prompts_file": prompts_file,
        "generation_timestamp": now_iso(),
        "total_prompts": result.total_prompts,
        "image_height": settings.height,
        "image_width": settings.width,
        "num_inference_steps": settings.steps,
        "use_refiner": settings.refiner,
        "device": result.device,
        "successful": result.successful,
        "failed": result.failed,
        "interrupted": result.interrupted,
        "pending": result.total_prompts - len(result.images),
        "skipped_samples": len(result.skipped_samples),
        **metadata_extra,
    }
    return {
        "metadata": metadata,
        "generated_images": [r.log_entry() for r in result.images],
        "skipped_samples": [{"sample_idx": s.sample_idx, "reason": s.reason} for s in result.skipped_samples],
    }


def summary_document(result: RunResult, settings) -> dict:
    by_mode: dict[str, int] = {}
    by_sample: dict[str, dict[str, int]] = {}
    for r in result.images:
        by_mode.setdefault(r.job.mode, 0)
        counts = by_sample.setdefault(str(r.job.sample_idx), {"failed": 0})
        counts.setdefault(r.job.mode, 0)
        if r.ok:
            by_mode[r.job.mode] += 1
            counts[r.job.mode] += 1
        else:
            counts["failed"] += 1
    # Modes first, "failed" last, as in the seed's summary.
    by_sample = {idx: {**{m: n for m, n in c.items() if m != "failed"}, "failed": c["failed"]} for idx, c in by_sample.items()}
    finished = result.successful + result.failed
    return {
        "generation_timestamp": now_iso(),
        "total_images_generated": result.successful,
        "total_images_failed": result.failed,
        "success_rate": round(100.0 * result.successful / finished, 2) if finished else 0.0,
        "by_mode": by_mode,
        "by_sample": by_sample,
        "image_dimensions": f"{settings.width}x{settings.height}",
        "inference_steps": settings.steps,
        "used_refiner": settings.refiner,
        "device": result.device,
        "output_directory": result.output_dir,
        "interrupted": result.interrupted,
        "skipped_samples": [s.sample_idx for s in result.skipped_samples],
        "failures": [
            {"sample_idx": r.job.sample_idx, "prompt_id": r.job.prompt_id, "error": r.error}
            for r in result.images
            if not r.ok
        ],
    }
