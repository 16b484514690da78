"""A line per sample about its music (source file, key and mode, tempo, mood) for the gallery's headers, from the
prompts file the run read, found without depending on the working directory of the `gallery` command.

The log records `prompts_file` as it was given, often relative to the directory the run was started in. That
directory is found from the summary's `output_directory` (also as given): the output folder's absolute path ends
with it. Best effort: the gallery never fails for want of these lines.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..outputs import SUMMARY_NAME
from ..untrusted_json import loads as parse_json
from .entries import RunLog

MAX_PROMPTS_FILE_BYTES = 512 * 2**20  # a prompts file of 100,000 samples is ~150 MB


def prompts_file_candidates(output_dir: Path, prompts_file: str) -> list[Path]:
    """Where the run's prompts file may be, most likely first; never relative to the current directory."""
    path = Path(prompts_file)
    if path.is_absolute():
        return [path]
    folder = Path(os.path.abspath(output_dir))
    candidates = []
    try:
        recorded = parse_json((output_dir / SUMMARY_NAME).read_text(encoding="utf-8")).get("output_directory")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, str) and recorded and not os.path.isabs(recorded):
        parts = Path(os.path.normpath(recorded)).parts
        if parts == (".",):
            candidates.append(folder / path)
        elif ".." not in parts and folder.parts[-len(parts):] == parts:
            candidates.append(Path(*folder.parts[:-len(parts)]) / path)  # the run's working directory
    candidates += [folder / path, folder.parent / path]
    return list(dict.fromkeys(candidates))


def music_of_samples(output_dir: Path, run_log: RunLog) -> dict[int, str]:
    name = run_log.metadata.get("prompts_file")
    if not isinstance(name, str) or not name or name == "<dict>":
        return {}
    for candidate in prompts_file_candidates(output_dir, name):
        try:
            if candidate.stat().st_size > MAX_PROMPTS_FILE_BYTES:
                continue
            document = parse_json(candidate.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError):
            continue
    else:
        return {}
    lines = {}
    for sample in document.get("samples", []) if isinstance(document, dict) else []:
        if not isinstance(sample, dict) or type(sample.get("sample_idx")) is not int:
            continue
        features = sample.get("musical_features") if isinstance(sample.get("musical_features"), dict) else {}
        parts = [str(sample["source"])] if sample.get("source") else []
        if features.get("key") and features.get("tonality"):
            clear = features.get("tonality_is_clear", True)
            parts.append(f'{features["key"]} {features["tonality"]}' + ("" if clear else " (mode unclear)"))
        if type(features.get("tempo")) in (int, float):
            try:
                parts.append(f'{float(features["tempo"]):.0f} BPM')
            except OverflowError:
                pass
        if features.get("mood"):
            parts.append(str(features["mood"]))
        if parts:
            lines[sample["sample_idx"]] = " · ".join(parts)
    return lines
