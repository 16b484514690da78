"""An image's recipe: the settings that decide its pixels, derived from the declarations in settings.py.

settings → recipe (written into every image, compared on resume) and recipe → settings (what `regenerate`
rebuilds) are both read off the same declarations, so they cannot drift apart. Equal recipes → identical images.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from .version import __version__
from .plan import Job
from .settings import GenerationSettings, declared_settings, default_of
from .single_file import SHORT_HASH_LENGTH, checkpoint_sha256, is_single_file, lora_sha256s
from .sources import lora_weights_file
from .outputs.image import a1111_parameters

RECIPE_FORMAT = "music2image-recipe/1"
# The sha256 fields of single-file checkpoints: (recipe key, the setting holding the file, when it applies).
CHECKPOINT_HASHES = (
    ("model_sha256", "model", lambda s: True),
    ("refiner_model_sha256", "refiner_model", lambda s: s.refiner),
    ("vae_sha256", "vae", lambda s: s.vae is not None),
)
LORA_SHORT_HASH_LENGTH = 12  # A1111's `Lora hashes`: the first 12 hex digits of the LoRA's tensor-data sha256


def recipe_of(settings: GenerationSettings, dtype_name: str) -> dict:
    """The settings that decide the pixels, with dtype resolved (`auto` → what this machine runs)."""
    recipe = {}
    for name, declared in declared_settings().items():
        if not declared.recipe:
            continue
        if declared.recipe_when is not None and not declared.recipe_when(settings):
            if declared.when_absent == "null":
                recipe[name] = None
            continue
        recipe[name] = getattr(settings, name)
    recipe["dtype"] = dtype_name
    # For a single-file checkpoint the path says little: its sha256 (a changed file at the same path is another
    # recipe). Written only for single files, so other recipes stay as they were.
    for key, source, applies in CHECKPOINT_HASHES:
        if applies(settings) and is_single_file(getattr(settings, source)):
            recipe[key] = checkpoint_sha256(getattr(settings, source))
    # A local LoRA file's contents decide the pixels as much as its path: its sha256 (new weights at the same path
    # are another recipe), and the hash A1111 names it by. A hub LoRA is named by its id.
    lora_file = lora_weights_file(settings.lora) if settings.lora is not None else None
    if lora_file is not None:
        recipe["lora_sha256"], tensors_sha256 = lora_sha256s(lora_file)
        recipe["lora_a1111_hash"] = tensors_sha256[:LORA_SHORT_HASH_LENGTH]
    return recipe


def settings_from_recipe(recipe: dict, **runtime) -> GenerationSettings:
    """The settings that make this recipe's images again (`runtime`: device, batch size, ... of this machine). A
    key missing from the recipe (written by an older version, or left out because it was off) or null means the
    setting's default."""
    values = {}
    for name, declared in declared_settings().items():
        if declared.recipe and recipe.get(name) is not None:
            values[name] = recipe[name]
    values["refiner"] = recipe.get("refiner_model") is not None
    return GenerationSettings(**values, **runtime)


def changed_checkpoints(recipe: dict, settings: GenerationSettings) -> list[tuple[str, str, str]]:
    """(file, sha256 in the recipe, sha256 now) for each single-file checkpoint that is no longer the same file."""
    changed = []
    for key, source, applies in CHECKPOINT_HASHES:
        path = getattr(settings, source)
        if applies(settings) and is_single_file(path):
            now = checkpoint_sha256(path)
            if recipe.get(key) != now:
                changed.append((path, recipe.get(key), now))
    lora_file = lora_weights_file(settings.lora) if settings.lora is not None else None
    if lora_file is not None and recipe.get("lora_sha256") is not None:  # (recipes before 0.3 hold no LoRA hash)
        now = lora_sha256s(lora_file)[0]
        if recipe["lora_sha256"] != now:
            changed.append((str(lora_file), recipe["lora_sha256"], now))
    return changed


def lora_name(source: str) -> str:
    """The name A1111 gives a LoRA in `<lora:NAME:scale>` and `Lora hashes` (its file stem; here a folder's name,
    as diffusers' folders all hold the same file name), without the `:` and `,` that would break the field."""
    path = Path(source).expanduser()
    name = path.stem if path.is_file() else path.name
    return name.replace(":", "").replace(",", "")


def library_versions() -> dict:
    import diffusers
    import torch
    import transformers

    return {
        "music2image": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _a1111_fields(job: Job, settings: GenerationSettings, recipe: dict) -> dict:
    """A1111's infotext fields, in its order; the declared ones (Steps, Sampler, CFG scale, ...) from settings.py."""
    declared = {}
    for name, setting in declared_settings().items():
        if setting.a1111 and (setting.recipe_when is None or setting.recipe_when(settings)):
            value = getattr(settings, name)
            declared[setting.a1111] = setting.a1111_value(value) if setting.a1111_value else value
    model_hash = recipe.get("model_sha256")
    refiner_hash = recipe.get("refiner_model_sha256")
    refiner = settings.refiner_model if settings.refiner else None
    if refiner and refiner_hash:
        refiner = f"{Path(refiner).stem} [{refiner_hash[:SHORT_HASH_LENGTH]}]"
    fields = {
        "Steps": declared.pop("Steps", None),
        "Sampler": declared.pop("Sampler", None),
        "CFG scale": declared.pop("CFG scale", None),
        "Seed": job.seed,
        "Size": f"{settings.width}x{settings.height}",
        # A1111 names a single-file checkpoint by its file stem and its short hash (what Civitai matches on).
        "Model hash": model_hash[:SHORT_HASH_LENGTH] if model_hash else None,
        "Model": Path(settings.model).stem if model_hash else settings.model,
        "Refiner": refiner,
        "Refiner switch at": declared.pop("Refiner switch at", None),
    }
    if recipe.get("lora_a1111_hash"):
        declared["Lora hashes"] = f"{lora_name(settings.lora)}: {recipe['lora_a1111_hash']}"
    return {**fields, **declared, "Version": f"music2image {__version__}"}


def image_metadata(job: Job, settings: GenerationSettings, recipe: dict, device: str,
                   revisions: dict | None = None, versions: dict | None = None) -> dict[str, str]:
    """The two text chunks every image carries: A1111 `parameters`, and our full recipe as JSON (with the hub
    commit of each model that came from the hub)."""
    full = {
        "format": RECIPE_FORMAT,
        "prompt": job.visual_prompt,
        "seed": job.seed,
        "sample_idx": job.sample_idx,
        "prompt_id": job.prompt_id,
        "mode": job.mode,
        "temperature": job.temperature,
        **({"image_index": job.image_index} if job.image_index else {}),
        "recipe": recipe,
        "device": device,
        "versions": versions or library_versions(),
        **({"revisions": revisions} if revisions else {}),
    }
    # A1111 writes an applied LoRA into the prompt as `<lora:NAME:scale>` (that is how its users apply one).
    prompt = job.visual_prompt
    if settings.lora is not None:
        prompt += f" <lora:{lora_name(settings.lora)}:{settings.lora_scale:g}>"
    return {
        "parameters": a1111_parameters(prompt, settings.negative_prompt, _a1111_fields(job, settings, recipe)),
        "music2image": json.dumps(full, ensure_ascii=False, sort_keys=True),
    }


__all__ = ["changed_checkpoints", "default_of", "image_metadata", "library_versions", "recipe_of",
           "settings_from_recipe"]
