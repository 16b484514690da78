"""Every generation setting, declared ONCE: name, type, default, flag, help, validation, whether it belongs to an
image's recipe, and its AUTOMATIC1111 `parameters` name.

The CLI flags and `--help` (cli.py), validation (`GenerationSettings.problems`), the recipe written into each image
and compared on resume (recipe.py), the settings `regenerate` rebuilds from a recipe, and the README's flag table
(checked by tests/test_settings.py) all derive from the `field(metadata=setting(...))` declarations below.

Adding a setting: declare it here, use it where it acts (engine/ or run.py), and add a test. Nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import SettingsError
from .sources import (
    DEFAULT_MODEL,
    is_single_file,
    lora_source_problems,
    model_config_problems,
    model_source_problems,
)

DEFAULT_REFINER_MODEL = "stabilityai/stable-diffusion-xl-refiner-1.0"

# A1111 sampler names, so the `parameters` chunk reads the way the SD ecosystem expects.
SAMPLER_NAMES = {
    "euler": "Euler",
    "euler-a": "Euler a",
    "dpm++2m": "DPM++ 2M",
    "dpm++2m-karras": "DPM++ 2M Karras",
    "unipc": "UniPC",
    "ddim": "DDIM",
    "lcm": "LCM",
    "tcd": "TCD",
}
SCHEDULERS = tuple(SAMPLER_NAMES)
# Few-step schedulers that pick their own timesteps from the distillation schedule: --timestep-spacing does not apply.
SELF_SPACED_SCHEDULERS = ("lcm", "tcd")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICES_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
OFFLOAD_MODES = ("auto", "none", "model", "sequential")
IMAGE_FORMATS = ("png", "webp", "jpeg")
SEED_SCOPES = ("prompt", "sample")
MAX_SEED = 2**32 - 1
MAX_SIDE = 4096


@dataclass(frozen=True)
class Setting:
    """How one GenerationSettings field appears outside Python. See `setting()`."""

    help: str
    flag: str | None = None  # default: --the-field-name
    metavar: str | None = None
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None  # a value → what is wrong with it (None: fine)
    parse: Callable[[str], Any] | None = None  # the flag's text → value (default: by the field's type)
    recipe: bool = False  # part of an image's recipe (decides the pixels)
    recipe_when: Callable[[Any], bool] | None = None  # in the recipe only when this holds for the settings
    when_absent: str = "omit"  # with recipe_when false: "omit" the key, or write "null"
    a1111: str | None = None  # its name in A1111's `parameters` text
    a1111_value: Callable[[Any], Any] | None = None
    default_text: str | None = None  # the default as the README/--help say it, when not the value itself


def setting(default: Any = dataclasses.MISSING, **declaration) -> Any:
    """A GenerationSettings field with its declaration attached (dataclass field metadata)."""
    return field(default=default, metadata={"setting": Setting(**declaration)})


def _side(name: str):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 64 or value % 8 or value > MAX_SIDE:
            return (f"--{name} {value!r}: must be a multiple of 8 from 64 to {MAX_SIDE} "
                    "(SDXL works in 8x smaller latents; we never round for you)")
        return None
    return check


def _whole(flag: str, low: int, high: int):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{flag} {value!r}: must be a whole number from {low} to {high}"
        return None
    return check


def _number(flag: str, low: float, high: float):
    def check(value):
        if not _finite(value) or not low <= value <= high:
            return f"{flag} {value!r}: must be a number from {low:g} to {high:g}"
        return None
    return check


def _choice(flag: str, choices: tuple, optional: bool = False):
    def check(value):
        if (optional and value is None) or value in choices:
            return None
        return f"{flag} {value!r}: choose one of {', '.join(choices)}"
    return check


def _check_refiner_switch(value):
    if not _finite(value) or not 0 < value < 1:
        return (f"--refiner-switch {value!r}: must be between 0 and 1 (exclusive): "
                "the fraction of the steps the base model runs")
    return None


def _check_device(value):
    if not isinstance(value, str) or not DEVICES_PATTERN.match(value):
        return f"--device {value!r}: use auto, cpu, mps, cuda or cuda:N"
    return None


def _check_batch_size(value):
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256):
        return f"--batch-size {value!r}: use auto or a whole number from 1 to 256"
    return None


def _check_text(flag: str):
    def check(value):
        return None if value is None or isinstance(value, str) else f"{flag} {value!r}: must be text"
    return check


def _parse_batch_size(text: str) -> int | str:
    """`--batch-size` text → "auto" or a whole number (ValueError says what is wrong)."""
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{text!r} must be 1 or more")
    return value


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _uses_refiner(settings) -> bool:
    return settings.refiner


def _single_file_model(settings) -> bool:
    return is_single_file(settings.model)


def _single_file_refiner(settings) -> bool:
    return settings.refiner and is_single_file(settings.refiner_model)


def _uses_lora(settings) -> bool:
    return settings.lora is not None


@dataclass(frozen=True)
class GenerationSettings:
    """What to generate and how. Settings with `recipe=True` decide the pixels; the rest only how fast."""

    model: str = setting(
        DEFAULT_MODEL, recipe=True,
        help="base model: hub id, local diffusers folder, single-file .safetensors checkpoint (A1111/Civitai "
             "layout), or 'tiny'")
    vae: str | None = setting(None, recipe=True, default_text="the model's",
                              help="another VAE (hub id, folder or single .safetensors file), e.g. "
                                   "madebyollin/sdxl-vae-fp16-fix")
    refiner: bool = setting(False, help="finish with the SDXL refiner (ensemble of expert denoisers)")
    refiner_model: str = setting(
        DEFAULT_REFINER_MODEL, recipe=True, recipe_when=_uses_refiner, when_absent="null",
        help="refiner model, as --model; shares the base's text_encoder_2 and VAE (one copy in memory)")
    refiner_switch: float = setting(
        0.8, check=_check_refiner_switch, recipe=True, recipe_when=_uses_refiner, when_absent="null",
        a1111="Refiner switch at",
        help="fraction of the steps the base runs before the refiner takes over (denoising_end/denoising_start)")
    width: int = setting(768, check=_side("width"), recipe=True,
                         help="image width: a multiple of 8 from 64 to 4096 (never rounded for you)")
    height: int = setting(768, check=_side("height"), recipe=True,
                          help="image height: a multiple of 8 from 64 to 4096 (never rounded for you)")
    steps: int = setting(30, check=_whole("--steps", 1, 1000), recipe=True, a1111="Steps", help="denoising steps")
    scheduler: str = setting("euler", choices=SCHEDULERS, check=_choice("--scheduler", SCHEDULERS), recipe=True,
                             a1111="Sampler", a1111_value=SAMPLER_NAMES.get, help="sampler")
    timestep_spacing: str | None = setting(
        None, choices=TIMESTEP_SPACINGS, check=_choice("--timestep-spacing", TIMESTEP_SPACINGS, optional=True),
        recipe=True, default_text="the scheduler's",
        help="override the scheduler's timestep spacing (few-step models want trailing)")
    guidance_scale: float = setting(5.0, check=_number("--guidance-scale", 0, 100), recipe=True, a1111="CFG scale",
                                    help="classifier-free guidance")
    negative_prompt: str | None = setting(None, check=_check_text("--negative-prompt"), recipe=True,
                                          default_text="none", help="one negative prompt for every image")
    dtype: str = setting("auto", choices=DTYPES, check=_choice("--dtype", DTYPES), recipe=True,
                         help="auto: float16 on cuda; on cpu bfloat16 where it has native bfloat16 (AVX-512 BF16 or AMX), "
                              "else float32; float32 on mps")
    seed: int = setting(0, check=_whole("--seed", 0, MAX_SEED), recipe=True,
                        help="base seed; each image's seed is derived from (seed, sample_idx, prompt_id, image index) "
                             "and recorded")
    # In the recipe only when not the default, so recipes from before the flag still match.
    seed_scope: str = setting(
        "prompt", choices=SEED_SCOPES, check=_choice("--seed-scope", SEED_SCOPES), recipe=True,
        recipe_when=lambda s: s.seed_scope != "prompt",
        help="prompt: every image its own seed; sample: all prompts of a sample share the seed of each image "
             "index, so a sample's images differ by their prompts alone")
    # Not in the recipe: K decides how many images, not any image's pixels (resume makes only the new ones).
    images_per_prompt: int = setting(1, check=_whole("--images-per-prompt", 1, 1000),
                                     help="images per prompt, each with its own seed (k = 0..K-1)")
    truncate_prompts: bool = setting(
        False, recipe=True,
        help="keep only the first 75 CLIP tokens of each prompt, as stock SDXL does (default: encode long prompts "
             "whole, in 75-token chunks)")
    image_format: str = setting("png", flag="--format", choices=IMAGE_FORMATS,
                                check=_choice("--format", IMAGE_FORMATS), recipe=True, help="image file format")
    # Compiled kernels round differently; in the recipe only when on, so recipes from before the flag still match.
    compile: bool = setting(
        False, recipe=True, recipe_when=lambda s: s.compile,
        help="torch.compile the UNet and VAE decoder for the run's fixed shapes (compile time reported apart)")
    lora: str | None = setting(
        None, metavar="PATH_OR_ID", recipe=True, recipe_when=_uses_lora, default_text="none",
        help="a LoRA fused into the base (.safetensors file, folder or hub id); few-step LoRAs (LCM, Lightning, "
             "Hyper-SD) also want --scheduler, --timestep-spacing trailing, low --guidance-scale and --steps")
    lora_scale: float = setting(1.0, check=_number("--lora-scale", -10, 10), recipe=True, recipe_when=_uses_lora,
                                help="strength of --lora")
    # The diffusers configs (folder, hub id or `tiny`) that describe a single-file --model / --refiner-model;
    # None: diffusers infers them from the checkpoint and reads them from the hub (Stability's SDXL repos).
    model_config: str | None = setting(
        None, metavar="FOLDER_OR_ID", recipe=True, recipe_when=_single_file_model, default_text="inferred",
        help="for a single-file --model: the diffusers configs of its architecture (a local folder works offline; "
             "default: inferred by diffusers and read from the hub)")
    refiner_model_config: str | None = setting(
        None, metavar="FOLDER_OR_ID", recipe=True, recipe_when=_single_file_refiner, default_text="inferred",
        help="as --model-config, for a single-file --refiner-model")
    # Runtime choices: the same pixels, another speed or memory use.
    device: str = setting("auto", check=_check_device,
                          help="auto (cuda, then mps, then cpu), cpu, mps, cuda, cuda:N; an explicit device that is "
                               "absent is an error, never a fallback")
    batch_size: int | str = setting("auto", check=_check_batch_size, parse=_parse_batch_size,
                                    help="prompts per pipeline call; auto: from free GPU memory, 1 on CPU")
    offload: str = setting("auto", choices=OFFLOAD_MODES, check=_choice("--offload", OFFLOAD_MODES),
                           help="model or sequential CPU offload (CUDA only); auto: model offload + VAE tiling only "
                                "when the GPU is too small for the whole pipeline")
    vae_tiling: bool = setting(False, help="decode in tiles (less memory at large sizes)")
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def replace(self, **changes) -> "GenerationSettings":
        return dataclasses.replace(self, **changes)

    def problems(self) -> list[str]:
        """Every invalid value, each as one line naming the flag, the value and what would be valid."""
        problems = []
        for name, declared in declared_settings().items():
            if declared.check is not None:
                problem = declared.check(getattr(self, name))
                if problem:
                    problems.append(problem)
        if self.refiner and not _check_refiner_switch(self.refiner_switch) and not _whole("", 1, 1000)(self.steps):
            base_steps = int(self.steps * self.refiner_switch)
            if base_steps < 1 or base_steps >= self.steps:
                problems.append(f"--refiner-switch {self.refiner_switch} with --steps {self.steps}: leaves no step "
                                "for the base or the refiner; use more steps")
        if self.timestep_spacing is not None and self.scheduler in SELF_SPACED_SCHEDULERS:
            problems.append(f"--timestep-spacing {self.timestep_spacing} with --scheduler {self.scheduler}: this scheduler "
                            "takes its steps from its own distillation schedule; leave --timestep-spacing out")
        problems += model_source_problems("--model", self.model, single_file="base")
        problems += model_config_problems("--model-config", self.model_config, "--model", self.model)
        if self.vae is not None:
            problems += model_source_problems("--vae", self.vae, marker="config.json", single_file="vae")
        if self.refiner:
            problems += model_source_problems("--refiner-model", self.refiner_model, single_file="refiner")
            problems += model_config_problems("--refiner-model-config", self.refiner_model_config, "--refiner-model",
                                              self.refiner_model)
        if self.lora is not None:
            problems += lora_source_problems(self.lora)
        return problems

    def validate(self) -> "GenerationSettings":
        problems = self.problems()
        if problems:
            raise SettingsError(problems)
        return self


def declared_settings() -> dict[str, Setting]:
    """Field name → declaration, in declaration order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(GenerationSettings) if "setting" in f.metadata}


def flag_of(name: str) -> str:
    return declared_settings()[name].flag or "--" + name.replace("_", "-")


def default_of(name: str) -> Any:
    return GenerationSettings.__dataclass_fields__[name].default
