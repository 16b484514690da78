"""Reading an output folder for evaluation: its log's images, and each sample's musical features.

Everything read here may be hostile (edited, truncated, made by another tool): a folder that is not a music2image
output folder is an error (nothing is written); a bad entry, path or feature is skipped with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Music2ImageError
from ..outputs import LOG_NAME
from ..untrusted_json import loads as parse_json

log = logging.getLogger("music2image")

MAX_IMAGE_BYTES = 256 * 1024 * 1024  # far above a 4096² PNG; a larger "image" is not one of ours
MAX_TEXT_BYTES = 512 * 1024 * 1024  # log and prompts files
_FEATURE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# Valence and arousal live in the sample's `emotion` (written by `music2image prompts`) or, upstream, beside the
# other features; both are read.
EMOTION_FEATURES = ("valence", "arousal")


@dataclass(frozen=True)
class ImageEntry:
    """One successful image of the log."""

    sample_idx: int
    prompt_id: int
    image_index: int  # 0 when the log has one image per prompt (no `image_index` field)
    mode: str
    temperature: float | None
    seed: int | None
    image_path: str  # relative to the output folder, checked to stay inside it
    visual_prompt: str


@dataclass
class FolderContents:
    log_metadata: dict
    entries: list[ImageEntry]
    music: dict[int, dict[str, object]]  # sample_idx → feature name → str, bool or finite number
    prompts_file: Path | None
    failed_images: int = 0
    unsaved_images: int = 0  # made by a --no-save run: listed, with no file to measure
    warnings: list[str] = field(default_factory=list)


def _whole(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r:.60}")
    return value


def _entry(item, output_dir: Path) -> ImageEntry:
    if not isinstance(item, dict):
        raise ValueError(f"not an object, got {item!r:.60}")
    temperature = item.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not math.isfinite(temperature)):
        raise ValueError(f"temperature must be a number or null, got {temperature!r:.60}")
    seed = item.get("seed")
    if seed is not None:
        seed = _whole(seed, "seed")
    mode, prompt, path = item.get("mode"), item.get("visual_prompt"), item.get("image_path")
    if not isinstance(mode, str) or not mode.strip() or len(mode) > 64:
        raise ValueError(f"mode must be a short text, got {mode!r:.60}")
    if not isinstance(prompt, str):
        raise ValueError(f"visual_prompt must be text, got {prompt!r:.60}")
    if not isinstance(path, str) or not path or os.path.isabs(path) or ".." in Path(path).parts:
        raise ValueError(f"image_path must be a path inside the output folder, got {path!r:.80}")
    root = output_dir.resolve()
    if root not in (output_dir / path).resolve().parents:
        raise ValueError(f"image_path leads outside the output folder: {path!r:.80}")
    return ImageEntry(_whole(item.get("sample_idx"), "sample_idx"), _whole(item.get("prompt_id"), "prompt_id"),
                      _whole(item.get("image_index", 0), "image_index"), mode, temperature, seed, path, prompt)


def read_text_file(path: Path) -> str:
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise ValueError(f"larger than {MAX_TEXT_BYTES >> 20} MiB")
    return path.read_text(encoding="utf-8")


def read_log(output_dir: Path) -> tuple[dict, list]:
    """The log's metadata and its list of images; Music2ImageError when the folder cannot be evaluated."""
    if not output_dir.is_dir():
        raise Music2ImageError(f"{output_dir}: not a folder (give the output folder of `music2image generate`)")
    path = output_dir / LOG_NAME
    if not path.is_file():
        raise Music2ImageError(f"{output_dir}: no {LOG_NAME} here; is this a music2image output folder? "
                               "(run `music2image generate` first)")
    try:
        document = parse_json(read_text_file(path))
    except (OSError, ValueError) as exc:
        raise Music2ImageError(f"{path}: cannot read it ({exc})") from None
    images = document.get("generated_images") if isinstance(document, dict) else None
    if not isinstance(images, list):
        raise Music2ImageError(f"{path}: has no list of generated_images; is it a music2image log?")
    metadata = document.get("metadata")
    return (metadata if isinstance(metadata, dict) else {}), images


def _feature_value(value):
    if isinstance(value, (bool, str)):
        return value[:200] if isinstance(value, str) else value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None  # lists, objects, null, NaN: not a column


def _sample_features(sample: dict) -> dict[str, object]:
    features: dict[str, object] = {}
    sources = [sample.get("musical_features"), {k: (sample.get("emotion") or {}).get(k) for k in EMOTION_FEATURES}
               if isinstance(sample.get("emotion"), dict) else None]
    for source in sources:
        if not isinstance(source, dict):
            continue
        for name, value in source.items():
            value = _feature_value(value)
            if isinstance(name, str) and _FEATURE_NAME.match(name) and value is not None and name not in features:
                features[name] = value
    return features


def resolve_prompts_file(metadata: dict, output_dir: Path, given: str | os.PathLike | None) -> Path | None:
    """The prompts file: as given, else the log's `prompts_file`, relative to the working directory (where
    `generate` usually ran), then to the output folder, then to the folder that holds it (`generate` ran beside
    its output folder: images/ next to generated_prompts/). The one used is recorded in evaluation.json."""
    if given is not None:
        path = Path(os.path.expanduser(given))
        if not path.is_file():
            raise Music2ImageError(f"--prompts-file {given}: no such file")
        return path
    recorded = metadata.get("prompts_file")
    if not isinstance(recorded, str) or not recorded:
        return None
    candidates = ([Path(recorded)] if os.path.isabs(recorded) else
                  [Path.cwd() / recorded, output_dir / recorded, output_dir.resolve().parent / recorded])
    return next((path for path in candidates if path.is_file()), None)


def read_music(path: Path | None, warnings: list[str]) -> dict[int, dict[str, object]]:
    if path is None:
        warnings.append("no prompts file found (the log's prompts_file, relative to here, to the output folder or "
                        "to its parent; or give --prompts-file): no musical features, so no music-vs-image answers")
        return {}
    try:
        document = parse_json(read_text_file(path))
    except (OSError, ValueError) as exc:
        warnings.append(f"{path}: cannot read the prompts file ({exc}); no musical features")
        return {}
    samples = document.get("samples") if isinstance(document, dict) else None
    music: dict[int, dict[str, object]] = {}
    for position, sample in enumerate(samples if isinstance(samples, list) else []):
        if not isinstance(sample, dict):
            continue
        sample_idx = sample.get("sample_idx")
        if isinstance(sample_idx, bool) or not isinstance(sample_idx, int):
            warnings.append(f"{path}: samples[{position}].sample_idx is not a whole number; its features are not used")
            continue
        features = _sample_features(sample)
        if features:
            music.setdefault(sample_idx, features)
    return music


def read_folder(output_dir: Path, prompts_file: str | os.PathLike | None = None) -> FolderContents:
    metadata, items = read_log(output_dir)
    warnings: list[str] = []
    entries: list[ImageEntry] = []
    seen: set[tuple[int, int, int]] = set()
    failed = unsaved = 0
    for position, item in enumerate(items):
        if isinstance(item, dict) and item.get("status") != "success":
            failed += 1
            continue
        if isinstance(item, dict) and item.get("image_path") is None:  # --no-save: made, never written
            unsaved += 1
            continue
        try:
            entry = _entry(item, output_dir)
        except ValueError as exc:
            warnings.append(f"{LOG_NAME}: generated_images[{position}]: {exc}; skipped")
            continue
        key = (entry.sample_idx, entry.prompt_id, entry.image_index)
        if key in seen:
            warnings.append(f"{LOG_NAME}: generated_images[{position}]: a second entry for sample {key[0]} prompt "
                            f"{key[1]} image {key[2]}; skipped")
            continue
        seen.add(key)
        entries.append(entry)
    path = resolve_prompts_file(metadata, output_dir, prompts_file)
    if unsaved:
        warnings.append(f"{unsaved} images of the log were made with --no-save and have no file; not evaluated")
    return FolderContents(metadata, entries, read_music(path, warnings), path, failed, unsaved, warnings)


def tonality(features: dict[str, object]) -> str | None:
    """"major", "minor" or None, from `tonality` (upstream and ours), a `mode` feature, or a key like "A minor"."""
    for name in ("tonality", "mode", "key"):
        value = features.get(name)
        if isinstance(value, str):
            words = value.lower().split()
            if "major" in words or "minor" in words:
                return "major" if "major" in words else "minor"
    return None


def numeric_feature(features: dict[str, object], name: str) -> float | None:
    value = features.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
