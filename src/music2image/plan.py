"""Prompts + settings → jobs: each image to make, with its seed, its path in the output folder and its recipe key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .prompts import SelectedPrompt
from .settings import GenerationSettings

EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}


def image_seed(base_seed: int, sample_idx: int, prompt_id: int, image_index: int = 0,
               seed_scope: str = "prompt") -> int:
    """Each image's seed from (seed, sample_idx, prompt_id, image_index) alone, so it does not depend on --limit,
    the order of the file, the batch an image lands in or --images-per-prompt (adding images k = 4..7 later keeps
    k = 0..3). With seed_scope "sample" every prompt of a sample gets the same seed for each k, so the images of
    one sample differ by their prompts alone. 32 bits, so it can be typed into other SD tools."""
    if seed_scope == "sample":
        text = f"music2image:{base_seed}:{sample_idx}:sample:{image_index}"
    elif image_index:
        text = f"music2image:{base_seed}:{sample_idx}:{prompt_id}:{image_index}"
    else:  # the one image per prompt of every earlier version
        text = f"music2image:{base_seed}:{sample_idx}:{prompt_id}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def image_relpath(sample_idx: int, prompt_id: int, image_format: str = "png", image_index: int = 0) -> str:
    """`sample_000/sample_000_prompt_00.png` for a prompt's first image, `..._prompt_00_k01.png` for its second
    and so on: built from the integer ids only, so nothing in a prompts file can steer a write outside the output
    directory, and stable whatever --images-per-prompt is."""
    folder = f"sample_{int(sample_idx):03d}"
    suffix = f"_k{int(image_index):02d}" if image_index else ""
    return f"{folder}/{folder}_prompt_{int(prompt_id):02d}{suffix}{EXTENSIONS[image_format]}"


def _recipe_keys(recipe: dict):
    """(seed, prompt) → the job's recipe key: the first 24 hex digits of the sha256 of
    `json.dumps({"prompt": prompt, "recipe": recipe, "seed": seed}, sort_keys=True, ensure_ascii=False)`, written out
    with the recipe serialised once per run (100k prompts re-serialised it 100k times)."""
    recipe_text = json.dumps(recipe, sort_keys=True, ensure_ascii=False)
    # json.dumps(prompt, ensure_ascii=False) is this encoder's encode(prompt): json.dumps builds a new encoder for
    # every call with a non-default option (a third of planning 100k prompts).
    quoted = json.JSONEncoder(ensure_ascii=False).encode

    def key(seed: int, prompt: str) -> str:
        text = f'{{"prompt": {quoted(prompt)}, "recipe": {recipe_text}, "seed": {seed}}}'
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    return key


@dataclass(frozen=True, slots=True)  # slots: a 100k-prompt run plans 100k of these (~5 MB less than with a dict each)
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
    image_index: int = 0  # k of --images-per-prompt K

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.sample_idx, self.prompt_id, self.image_index)


def plan_jobs(prompts: list[SelectedPrompt], settings: GenerationSettings, recipe: dict) -> list[Job]:
    """Every image to make, in prompts-file order, a prompt's K images (--images-per-prompt) together."""
    jobs = []
    key_of = _recipe_keys(recipe)
    for prompt in prompts:
        for image_index in range(settings.images_per_prompt):
            seed = image_seed(settings.seed, prompt.sample_idx, prompt.prompt_id, image_index, settings.seed_scope)
            jobs.append(
                Job(
                    sample_idx=prompt.sample_idx,
                    prompt_id=prompt.prompt_id,
                    mode=prompt.mode,
                    temperature=prompt.temperature,
                    visual_prompt=prompt.visual_prompt,
                    seed=seed,
                    image_path=image_relpath(prompt.sample_idx, prompt.prompt_id, settings.image_format, image_index),
                    recipe_key=key_of(seed, prompt.visual_prompt),
                    image_index=image_index,
                )
            )
    return jobs
