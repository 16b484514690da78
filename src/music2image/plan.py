"""Prompts + settings → jobs: each image to make, with its seed, its path in the output folder and its recipe key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .prompts import SelectedPrompt
from .settings import GenerationSettings

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


def recipe_key(recipe: dict, seed: int, prompt: str) -> str:
    text = json.dumps({"recipe": recipe, "seed": seed, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _recipe_keys(recipe: dict):
    """`recipe_key` for one recipe and many prompts: the same text, with the recipe serialised once (100k
    prompts re-serialised it 100k times). The keys of `{"prompt", "recipe", "seed"}` in sorted order."""
    recipe_text = json.dumps(recipe, sort_keys=True, ensure_ascii=False)

    def key(seed: int, prompt: str) -> str:
        text = f'{{"prompt": {json.dumps(prompt, ensure_ascii=False)}, "recipe": {recipe_text}, "seed": {seed}}}'
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    return key


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
    key_of = _recipe_keys(recipe)
    for prompt in prompts:
        seed = image_seed(settings.seed, prompt.sample_idx, prompt.prompt_id)
        jobs.append(
            Job(
                sample_idx=prompt.sample_idx,
                prompt_id=prompt.prompt_id,
                mode=prompt.mode,
                temperature=prompt.temperature,
                visual_prompt=prompt.visual_prompt,
                seed=seed,
                image_path=image_relpath(prompt.sample_idx, prompt.prompt_id, settings.image_format),
                recipe_key=key_of(seed, prompt.visual_prompt),
            )
        )
    return jobs
