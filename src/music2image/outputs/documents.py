"""The two JSON documents the seed's users read, `image_generation_log.json` and `image_generation_summary.json`,
built from a run's result. The seed's keys are all kept, with the same names and meanings; ours are added beside
them."""

from __future__ import annotations

from .files import now_iso

LOG_NAME = "image_generation_log.json"
SUMMARY_NAME = "image_generation_summary.json"
TEXT_LOG_NAME = "generate_images.log"


def log_document(result, prompts_file: str, settings, metadata_extra: dict, streamed: bool = False) -> dict:
    """The selection's images in prompts-file order, then the folder's finished images the selection left out
    (marked `"in_selection": false`), so the log always describes every finished image in the folder.

    `streamed`: `generated_images` is a generator of the entries, for `Files.write_json` (which writes it as the
    list it yields): a 100k-image log's entries are never all in memory at once (~50 MB of dicts). A generator is
    spent once written: such a document is for one write (a second would list no images); build another for more."""
    kept = result.kept
    successful, failed = _counts(result.images + kept)
    metadata = {
        "prompts_file": prompts_file,
        "generation_timestamp": now_iso(),
        "total_prompts": result.total_prompts + len(kept),
        "image_height": settings.height,
        "image_width": settings.width,
        "num_inference_steps": settings.steps,
        "use_refiner": settings.refiner,
        "device": result.device,
        "successful": successful,
        "failed": failed,
        "interrupted": result.interrupted,
        "pending": result.pending,
        "skipped_samples": len(result.skipped_samples),
        **({"kept_outside_selection": len(kept)} if kept else {}),
        **metadata_extra,
    }
    if settings.images_per_prompt > 1:
        metadata.update(images_per_prompt=settings.images_per_prompt, total_images=result.total_images + len(kept))
    many = settings.images_per_prompt > 1  # several images per prompt: entries say which
    # A kept image with k > 0 (made by an earlier run with more images per prompt) says its k even in a one-image
    # log, so the reports show it with its prompt's other images rather than as a second image k = 0.
    def entries():
        yield from (r.log_entry(many) for r in result.images)
        yield from ({**r.log_entry(many or r.image_index > 0), "in_selection": False} for r in kept)
    return {
        "metadata": metadata,
        "generated_images": entries() if streamed else list(entries()),
        "skipped_samples": [{"sample_idx": s.sample_idx, "reason": s.reason} for s in result.skipped_samples],
    }


def _counts(records) -> tuple[int, int]:
    successful = sum(1 for r in records if r.ok)
    return successful, len(records) - successful


def summary_document(result, settings) -> dict:
    """Counts over every image the log lists (the selection's and the folder's other finished ones)."""
    records = result.images + result.kept
    by_mode: dict[str, int] = {}
    by_sample: dict[str, dict[str, int]] = {}
    for r in records:
        by_mode.setdefault(r.mode, 0)
        counts = by_sample.setdefault(str(r.sample_idx), {"failed": 0})
        counts.setdefault(r.mode, 0)
        if r.ok:
            by_mode[r.mode] += 1
            counts[r.mode] += 1
        else:
            counts["failed"] += 1
    # Modes first, "failed" last, as in the seed's summary.
    by_sample = {idx: {**{m: n for m, n in c.items() if m != "failed"}, "failed": c["failed"]} for idx, c in by_sample.items()}
    successful, failed = _counts(records)
    finished = successful + failed
    return {
        "generation_timestamp": now_iso(),
        "total_images_generated": successful,
        "total_images_failed": failed,
        "success_rate": round(100.0 * successful / finished, 2) if finished else 0.0,
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
            {"sample_idx": r.sample_idx, "prompt_id": r.prompt_id, "error": r.error,
             **({"image_index": r.image_index} if settings.images_per_prompt > 1 else {})}
            for r in records
            if not r.ok
        ],
    }
