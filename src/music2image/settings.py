"""Every generation setting in one frozen dataclass, with its default, validated once (all problems at once)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SettingsError
from .single_file import is_single_file, single_file_problems

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
DEFAULT_REFINER_MODEL = "stabilityai/stable-diffusion-xl-refiner-1.0"
TINY_MODEL = "tiny"  # shortcut: the tiny random SDXL built in code (see tiny.py)

SCHEDULERS = ("euler", "euler-a", "dpm++2m", "dpm++2m-karras", "unipc", "ddim", "lcm", "tcd")
# Few-step schedulers that pick their own timesteps from the distillation schedule: --timestep-spacing does not apply.
SELF_SPACED_SCHEDULERS = ("lcm", "tcd")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICES_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
OFFLOAD_MODES = ("auto", "none", "model", "sequential")
IMAGE_FORMATS = ("png", "webp", "jpeg")
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
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
MAX_SEED = 2**32 - 1
MAX_SIDE = 4096


@dataclass(frozen=True)
class GenerationSettings:
    """What to generate and how. The `recipe_fields` decide the pixels; the rest only how fast."""

    model: str = DEFAULT_MODEL
    refiner: bool = False
    refiner_model: str = DEFAULT_REFINER_MODEL
    # The diffusers configs (folder, hub id or `tiny`) that describe a single-file --model / --refiner-model;
    # None: diffusers infers them from the checkpoint and reads them from the hub (Stability's SDXL repos).
    model_config: str | None = None
    refiner_model_config: str | None = None
    refiner_switch: float = 0.8
    width: int = 768
    height: int = 768
    steps: int = 30
    guidance_scale: float = 5.0
    negative_prompt: str | None = None
    scheduler: str = "euler"
    timestep_spacing: str | None = None  # None: the scheduler config's own (SDXL: leading)
    seed: int = 0
    dtype: str = "auto"
    vae: str | None = None  # another VAE (hub id or folder), e.g. madebyollin/sdxl-vae-fp16-fix
    truncate_prompts: bool = False  # stock CLIP behaviour: keep the first 75 tokens (default: encode in chunks)
    # runtime choices: same pixels, other speed or memory
    device: str = "auto"
    batch_size: int | str = "auto"
    offload: str = "auto"  # auto: model offload + VAE tiling only on a GPU too small to hold everything
    vae_tiling: bool = False
    lora: str | None = None  # a LoRA for the base UNet/text encoders (folder, .safetensors file or hub id), fused
    lora_scale: float = 1.0
    compile: bool = False  # torch.compile the UNet and VAE decoder (fixed shapes; fused kernels move pixels by ~1)
    image_format: str = "png"
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def replace(self, **changes) -> "GenerationSettings":
        return dataclasses.replace(self, **changes)

    def problems(self) -> list[str]:
        """Every invalid value, each as one line naming the flag, the value and what would be valid."""
        problems = []
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 64 or value % 8 or value > MAX_SIDE:
                problems.append(
                    f"--{name} {value!r}: must be a multiple of 8 from 64 to {MAX_SIDE} "
                    "(SDXL works in 8x smaller latents; we never round for you)"
                )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            problems.append(f"--steps {self.steps!r}: must be a whole number from 1 to 1000")
        if not _finite(self.guidance_scale) or not 0 <= self.guidance_scale <= 100:
            problems.append(f"--guidance-scale {self.guidance_scale!r}: must be a number from 0 to 100")
        if not _finite(self.refiner_switch) or not 0 < self.refiner_switch < 1:
            problems.append(
                f"--refiner-switch {self.refiner_switch!r}: must be between 0 and 1 (exclusive): "
                "the fraction of the steps the base model runs"
            )
        elif self.refiner and isinstance(self.steps, int) and self.steps >= 1:
            base_steps = int(self.steps * self.refiner_switch)
            if base_steps < 1 or base_steps >= self.steps:
                problems.append(
                    f"--refiner-switch {self.refiner_switch} with --steps {self.steps}: leaves no step for the "
                    "base or the refiner; use more steps"
                )
        if self.scheduler not in SCHEDULERS:
            problems.append(f"--scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
        if self.timestep_spacing is not None and self.timestep_spacing not in TIMESTEP_SPACINGS:
            problems.append(f"--timestep-spacing {self.timestep_spacing!r}: choose one of {', '.join(TIMESTEP_SPACINGS)}")
        elif self.timestep_spacing is not None and self.scheduler in SELF_SPACED_SCHEDULERS:
            problems.append(f"--timestep-spacing {self.timestep_spacing} with --scheduler {self.scheduler}: this scheduler "
                            "takes its steps from its own distillation schedule; leave --timestep-spacing out")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            problems.append(f"--seed {self.seed!r}: must be a whole number from 0 to {MAX_SEED}")
        if self.dtype not in DTYPES:
            problems.append(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if not isinstance(self.device, str) or not DEVICES_PATTERN.match(self.device):
            problems.append(f"--device {self.device!r}: use auto, cpu, mps, cuda or cuda:N")
        if self.batch_size != "auto" and (
            isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 256
        ):
            problems.append(f"--batch-size {self.batch_size!r}: use auto or a whole number from 1 to 256")
        if self.offload not in OFFLOAD_MODES:
            problems.append(f"--offload {self.offload!r}: choose one of {', '.join(OFFLOAD_MODES)}")
        if self.image_format not in IMAGE_FORMATS:
            problems.append(f"--format {self.image_format!r}: choose one of {', '.join(IMAGE_FORMATS)}")
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            problems.append(f"--negative-prompt {self.negative_prompt!r}: must be text")
        problems += model_source_problems("--model", self.model, single_file="base")
        problems += _config_problems("--model-config", self.model_config, "--model", self.model)
        if self.vae is not None:
            problems += model_source_problems("--vae", self.vae, marker="config.json", single_file="vae")
        if self.refiner:
            problems += model_source_problems("--refiner-model", self.refiner_model, single_file="refiner")
            problems += _config_problems("--refiner-model-config", self.refiner_model_config, "--refiner-model",
                                         self.refiner_model)
        if self.lora is not None:
            problems += lora_source_problems(self.lora)
        if not _finite(self.lora_scale) or not -10 <= self.lora_scale <= 10:
            problems.append(f"--lora-scale {self.lora_scale!r}: must be a number from -10 to 10")
        return problems

    def validate(self) -> "GenerationSettings":
        problems = self.problems()
        if problems:
            raise SettingsError(problems)
        return self


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def lora_source_problems(source: str) -> list[str]:
    """A LoRA is a .safetensors file, a folder holding one, or a hub id (`org/name`)."""
    if not isinstance(source, str) or not source.strip():
        return ["--lora: must name a LoRA (a .safetensors file, a folder with one, or a hub id)"]
    path = Path(source).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return [f"--lora {source}: pickle weights can run arbitrary code when loaded; use a .safetensors LoRA"]
    if path.is_file():
        return [] if path.suffix.lower() == ".safetensors" else [f"--lora {source}: not a .safetensors file"]
    if path.is_dir():
        return [] if any(path.glob("*.safetensors")) else [f"--lora {source}: folder holds no .safetensors file"]
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        return [f"--lora {source}: no such file or folder (and not a hub id like latent-consistency/lcm-lora-sdxl)"]
    return []


def _config_problems(flag: str, config: str | None, model_flag: str, model: str) -> list[str]:
    if config is None:
        return []
    if isinstance(model, str) and not model.lower().endswith(".safetensors"):
        return [f"{flag} {config}: describes a single-file {model_flag} (.safetensors); {model} brings its own configs"]
    return model_source_problems(flag, config)


def model_source_problems(flag: str, source: str, marker: str = "model_index.json",
                          single_file: str | None = None) -> list[str]:
    """A model is `tiny`, a hub id (`org/name`), a local diffusers folder or, where `single_file` names what it
    must hold ("base", "refiner" or "vae"), a single-file .safetensors checkpoint. Checked before anything loads."""
    if not isinstance(source, str) or not source.strip():
        return [f"{flag}: must name a model (a hub id like {DEFAULT_MODEL} or a local folder)"]
    if source == TINY_MODEL and marker == "model_index.json":
        return []
    path = Path(source).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return [
            f"{flag} {source}: pickle checkpoints ({', '.join(PICKLE_SUFFIXES)}) can run arbitrary code when loaded, "
            "so music2image refuses them; convert it to .safetensors or use a diffusers folder with safetensors weights"
        ]
    if path.exists():
        if path.is_dir() and not (path / marker).is_file():
            return [f"{flag} {source}: folder has no {marker}, so it is not a diffusers folder of that kind"]
        if path.is_file():
            if single_file is None or path.suffix.lower() != ".safetensors":
                kinds = "a .safetensors checkpoint, " if single_file else ""
                return [f"{flag} {source}: is a file; give {kinds}a diffusers folder or a hub id"]
            return single_file_problems(flag, source, single_file)
        return []
    looks_like_path = source.startswith((".", "/", "~")) or "\\" in source or source.count("/") != 1
    if looks_like_path:
        return [f"{flag} {source}: no such file or folder (and not a hub id like {DEFAULT_MODEL})"]
    return []
