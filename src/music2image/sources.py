"""Where a model, VAE or LoRA comes from (a hub id, a local folder, a single .safetensors file, or `tiny`), checked
before anything loads: a bad path is one line of the settings' problems, not a failure minutes into loading."""

from __future__ import annotations

from pathlib import Path

from .single_file import is_single_file, single_file_problems

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
TINY_MODEL = "tiny"  # shortcut: the tiny random SDXL built in code (see tiny.py)
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # the file diffusers' save_lora_weights writes

__all__ = ["DEFAULT_MODEL", "PICKLE_SUFFIXES", "TINY_MODEL", "is_single_file", "lora_source_problems",
           "lora_weights_file", "model_config_problems", "model_source_problems"]


def lora_weights_file(source: str) -> Path | None:
    """The one local .safetensors file a --lora names: the file itself, or in a folder diffusers' own
    `pytorch_lora_weights.safetensors` or else its only .safetensors file. None for a hub id (or an ambiguous
    folder, which `lora_source_problems` refuses). Loading and the recipe's hash both use this file."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / LORA_WEIGHT_NAME).is_file():
            return path / LORA_WEIGHT_NAME
        found = sorted(path.glob("*.safetensors"))
        return found[0] if len(found) == 1 else None
    return None


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
        if lora_weights_file(source) is not None:
            return []
        found = len(list(path.glob("*.safetensors")))
        if not found:
            return [f"--lora {source}: folder holds no .safetensors file"]
        return [f"--lora {source}: folder holds {found} .safetensors files and no {LORA_WEIGHT_NAME}; give the file"]
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        return [f"--lora {source}: no such file or folder (and not a hub id like latent-consistency/lcm-lora-sdxl)"]
    return []


def model_config_problems(flag: str, config: str | None, model_flag: str, model: str) -> list[str]:
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
