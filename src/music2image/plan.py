"""Prompts + settings → jobs (sample, prompt, seed, output path), and which of them are already done."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .prompts import SelectedPrompt
from .settings import GenerationSettings
from .single_file import checkpoint_sha256, is_single_file

EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}


def image_seed(base_seed: int, sample_idx: int, prompt_id: int) -> int:
    """Each image's seed from (seed, sample_idx, prompt_id) alone, so it does not depend on --limit, the order
    of the file or the batch an image lands in. 32 bits, so it can be typed into other SD tools."""
    digest = hashlib.sha256(f"music2image:{base_seed}:{sample_idx}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def image_relpath(sample_idx: int, prompt_id: int, image_format: str = "png") -> str:
    """`sample_000/sample_000_prompt_00.png`: built from the integer ids only, so nothing in a prompts file can
    steer a write outside the output directory."""
    folder = f"sample_{int(sample_idx):03d}"
    return f"{folder}/{folder}_prompt_{int(prompt_id):02d}{EXTENSIONS[image_format]}"


def recipe_settings(settings: GenerationSettings, dtype_name: str) -> dict:
    """The settings that decide the pixels (with dtype resolved). Equal recipes → identical images."""
    return {
        "model": settings.model,
        "vae": settings.vae,
        "refiner_model": settings.refiner_model if settings.refiner else None,
        "refiner_switch": settings.refiner_switch if settings.refiner else None,
        "width": settings.width,
        "height": settings.height,
        "steps": settings.steps,
        "scheduler": settings.scheduler,
        "timestep_spacing": settings.timestep_spacing,
        "guidance_scale": settings.guidance_scale,
        "negative_prompt": settings.negative_prompt,
        "dtype": dtype_name,
        "seed": settings.seed,
        "truncate_prompts": settings.truncate_prompts,
        "image_format": settings.image_format,
        # Compiled kernels round differently; written only when on, so recipes from before the flag still match.
        **({"compile": True} if settings.compile else {}),
        **({"lora": settings.lora, "lora_scale": settings.lora_scale} if settings.lora else {}),
        **single_file_fields(settings),
    }


def single_file_fields(settings: GenerationSettings) -> dict:
    """For a single-file checkpoint the path says little: its sha256 (a changed file at the same path is another
    recipe) and the configs it was read with. Written only for single files, so other recipes stay as they were."""
    fields = {}
    if is_single_file(settings.model):
        fields.update(model_sha256=checkpoint_sha256(settings.model), model_config=settings.model_config)
    if settings.refiner and is_single_file(settings.refiner_model):
        fields.update(refiner_model_sha256=checkpoint_sha256(settings.refiner_model),
                      refiner_model_config=settings.refiner_model_config)
    if settings.vae is not None and is_single_file(settings.vae):
        fields.update(vae_sha256=checkpoint_sha256(settings.vae))
    return fields


def recipe_key(recipe: dict, seed: int, prompt: str) -> str:
    text = json.dumps({"recipe": recipe, "seed": seed, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True)
class Job:
    """One image to make."""

    sample_idx: int
    prompt_id: int
    mode: str
    temperature: float | None
    visual_prompt: str
    seed: int
    image_path: str  # relative to the output directory
    recipe_key: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.sample_idx, self.prompt_id)


def plan_jobs(prompts: list[SelectedPrompt], settings: GenerationSettings, recipe: dict) -> list[Job]:
    jobs = []
    for p in prompts:
        seed = image_seed(settings.seed, p.sample_idx, p.prompt_id)
        jobs.append(
            Job(
                sample_idx=p.sample_idx,
                prompt_id=p.prompt_id,
                mode=p.mode,
                temperature=p.temperature,
                visual_prompt=p.visual_prompt,
                seed=seed,
                image_path=image_relpath(p.sample_idx, p.prompt_id, settings.image_format),
                recipe_key=recipe_key(recipe, seed, p.visual_prompt),
            )
        )
    return jobs


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def finished_jobs(jobs: list[Job], latest: dict[tuple[int, int], dict], output_dir: Path) -> set[tuple[int, int]]:
    """Jobs whose latest journal record is a success with the same recipe and whose file is still there,
    byte for byte (a missing or corrupt image is made again)."""
    done = set()
    for job in jobs:
        record = latest.get(job.key)
        if not record or record.get("status") != "success" or record.get("recipe_key") != job.recipe_key:
            continue
        if not record.get("sha256") or record.get("image_path") != job.image_path:
            continue  # a --no-save record: there is no file to keep
        if file_sha256(output_dir / job.image_path) == record["sha256"]:
            done.add(job.key)
    return done
