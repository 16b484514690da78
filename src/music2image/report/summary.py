"""`music2image summary`: the summary JSON as a table, read as a stranger's file.

The run's totals must validate (else one message, exit 2); a row with a wrong type (a sample, a failure) is left out
with one warning. Text from the file has its control characters escaped before it reaches a terminal.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass

from ..evaluation.documents import headline, remade_since_evaluation
from ..errors import Music2ImageError
from ..image_text import terminal_safe, validation_problems
from ..outputs import LOG_NAME, SUMMARY_NAME
from .entries import SKIPPED, SampleIndex, read_json_file, validated

Count = Annotated[StrictInt, Field(ge=0)]


@validated_dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class RunTotals:
    """The head of the summary: what the run was and how it went."""

    total_images_generated: Count
    total_images_failed: Count
    success_rate: StrictFloat
    image_dimensions: StrictStr
    inference_steps: StrictInt
    used_refiner: StrictBool
    device: StrictStr
    interrupted: StrictBool = False


@validated_dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class SampleCounts:
    """One row of the table: a sample's images by mode, and its failures."""

    sample_idx: SampleIndex
    counts: dict[StrictStr, Count]


@validated_dataclass(frozen=True, config=ConfigDict(extra="ignore"))
class Failure:
    sample_idx: SampleIndex
    prompt_id: SampleIndex
    error: StrictStr | None = None


_SAMPLE_COUNTS = TypeAdapter(SampleCounts)
_FAILURE = TypeAdapter(Failure)
_SAMPLE_IDX = TypeAdapter(SampleIndex)
_MODE_COUNT = TypeAdapter(tuple[StrictStr, Count])


def _skip_reasons(output_dir: Path) -> dict[int, str]:
    """Why each sample was skipped, from the log (the summary file keeps only their numbers, as the original
    script's did); nothing when the log cannot be read or says nothing."""
    try:
        document = read_json_file(output_dir / LOG_NAME)
    except Music2ImageError:
        return {}
    skipped, _ = validated(document.get("skipped_samples"), SKIPPED, "skipped_samples", output_dir / LOG_NAME)
    return {sample.sample_idx: sample.reason for sample in skipped}


def summary_text(output_dir: str | os.PathLike) -> str:
    output_dir = Path(output_dir)
    source = output_dir / SUMMARY_NAME
    summary = read_json_file(source)
    try:
        totals = TypeAdapter(RunTotals).validate_python(summary)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise Music2ImageError("\n".join([f"{source}: cannot be shown ({len(problems)} "
                                          f"problem{'s' if len(problems) > 1 else ''}):",
                                          *(f"  {problem}" for problem in problems)])) from None
    by_mode = _as_dict(summary.get("by_mode"))
    modes_counted, _ = validated(list(by_mode.items()), _MODE_COUNT, "by_mode", source)
    by_mode = dict(modes_counted)
    by_sample = _as_dict(summary.get("by_sample"))
    rows, _ = validated([{"sample_idx": int(key) if key.isascii() and key.isdigit() else key, "counts": counts}
                         for key, counts in by_sample.items()], _SAMPLE_COUNTS, "by_sample", source)
    failures, _ = validated(summary.get("failures", []), _FAILURE, "failures", source)
    skipped, _ = validated(summary.get("skipped_samples", []), _SAMPLE_IDX, "skipped_samples", source)

    total = totals.total_images_generated + totals.total_images_failed
    modes = sorted({m for row in rows for m in row.counts if m != "failed"} | set(by_mode))
    lines = [
        f"{output_dir}: {totals.image_dimensions}, {totals.inference_steps} steps, "
        f"refiner {'on' if totals.used_refiner else 'off'}, device {totals.device}"
        + (" (interrupted)" if totals.interrupted else ""),
        f"success rate {totals.success_rate:.1f}%: {totals.total_images_generated} of {total} images, "
        f"{totals.total_images_failed} failed, {len(skipped)} samples skipped",
        "",
        "by mode:",
    ]
    lines += [f"  {mode:<16} {by_mode.get(mode, 0):>6}" for mode in modes]
    lines += ["", "by sample:", "  " + "sample".ljust(8) + "".join(m[:14].rjust(15) for m in modes) + "failed".rjust(8)]
    for row in sorted(rows, key=lambda row: row.sample_idx):
        lines.append("  " + str(row.sample_idx).ljust(8) + "".join(str(row.counts.get(m, 0)).rjust(15) for m in modes)
                     + str(row.counts.get("failed", 0)).rjust(8))
    if failures:
        lines += ["", "failures:"]
        lines += [f"  sample {f.sample_idx} prompt {f.prompt_id}: {f.error}" for f in failures]
    if skipped:
        reasons = _skip_reasons(output_dir)
        lines += ["", "skipped samples:"]
        lines += [f"  sample {i}" + (f": {reasons[i]}" if reasons.get(i) else "") for i in skipped]
    answer = headline(output_dir)  # when `music2image evaluate` has run
    if answer:
        remade = remade_since_evaluation(output_dir)
        stale = (f" (of the images before {remade} of them were made again: run `music2image evaluate` again)"
                 if remade else "")
        lines += ["", f"evaluation{stale}: " + answer]
    return terminal_safe("\n".join(lines))


def _as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}
