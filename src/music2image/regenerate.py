"""`show` and `regenerate`: read the recipe inside an image we made, and make that image again from it."""

from __future__ import annotations

import os
from pathlib import Path

from .engine import Engine, ImageRequest, available_device
from .errors import DiskError, ModelLoadError, OutputDirError
from .outputs.files import atomic_write_bytes
from .image_text import parse_recipe, read_image_text
from .outputs.image import encode_image
from .plan import Job
from .recipe import changed_checkpoints, image_metadata, settings_from_recipe
from .safe_paths import creation_problem
from .sources import TINY_MODEL, lora_weights_file


def read_recipe(image_path: str | os.PathLike) -> dict:
    """The full recipe embedded in an image we made (PNG text chunk, or EXIF for WebP/JPEG), validated whole
    before anything loads."""
    return parse_recipe(read_image_text(image_path), image_path)


# The recipe's settings that name a model, config, VAE or LoRA: a hub id, or a path as it was given to generate.
_SOURCE_SETTINGS = ("model", "model_config", "vae", "refiner_model", "refiner_model_config", "lora")


def _relative_sources_not_found(document: dict) -> list[str]:
    """The recipe's relative local paths that do not exist from the working directory, as "PATH (setting)". A value
    that was a hub id has its commit in the recipe's `revisions` (a LoRA: no sha256), so it is not listed."""
    recipe, revisions = document["recipe"], document.get("revisions") or {}
    found = []
    for name in _SOURCE_SETTINGS:
        value = recipe.get(name)
        from_hub = name in revisions if name != "lora" else recipe.get("lora_sha256") is None
        if not isinstance(value, str) or value == TINY_MODEL or from_hub:
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and not os.path.lexists(path):
            found.append(f"{value} ({name})")
    return found


def regenerate_image(image_path: str | os.PathLike, output: str | os.PathLike | None = None,
                     device: str | None = None) -> Path:
    """Make an image again from the recipe inside it: byte-identical on the same device and library versions."""
    document = read_recipe(image_path)
    recipe = document["recipe"]
    settings = settings_from_recipe(recipe, device=device or document.get("device", "auto"), batch_size=1).validate()
    changed_lora = str(lora_weights_file(settings.lora)) if settings.lora is not None else None
    for source, then, now in changed_checkpoints(recipe, settings):
        raise ModelLoadError(
            f"{image_path}: was made from {source} with sha256 {then}, but that file now has sha256 "
            f"{now}: the {'LoRA' if source == changed_lora else 'checkpoint'} changed, so the image would not come "
            "out the same")
    source = Path(image_path)
    target = Path(output) if output else source.with_name(f"{source.stem}.regenerated{source.suffix}")
    # Where the image goes is checked before the model loads (minutes with real weights), not found out after.
    problem = "it is a folder (give a file name)" if os.path.isdir(target) else creation_problem(target)
    if problem:
        raise OutputDirError(f"{target}: cannot be written: {problem}; nothing was written")
    device = available_device(settings.device)
    job = Job(
        sample_idx=document["sample_idx"],
        prompt_id=document["prompt_id"],
        mode=document["mode"],
        temperature=document.get("temperature"),
        visual_prompt=document["prompt"],
        seed=document["seed"],
        image_path=str(image_path),
        recipe_key="",
        image_index=document.get("image_index", 0),
    )
    try:
        engine = Engine.load(settings, device)
    except ModelLoadError as exc:
        elsewhere = _relative_sources_not_found(document)
        if elsewhere:  # the hub's "not cached" error about a --model flag nobody gave would hide the cause
            raise ModelLoadError(
                f"{image_path}: its recipe names {', '.join(elsewhere)}, not found from here ({os.getcwd()}): a path "
                "relative to the folder the image was made in; run regenerate from that folder") from exc
        raise
    outcome = engine.generate([ImageRequest(job.visual_prompt, job.seed)])[0]
    if outcome.pixels is None:
        raise DiskError(f"{image_path}: regeneration failed: {outcome.error}")
    data = encode_image(outcome.pixels, settings.image_format,
                        image_metadata(job, settings, recipe, device, engine.revisions))
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:  # disk full, or the folder changed since the check: no half-written file is left
        raise DiskError(f"{target}: cannot write it ({exc.strerror or exc})") from exc
    return target
