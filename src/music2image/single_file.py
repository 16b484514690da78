"""Single-file SDXL checkpoints: the original Stability layout that A1111, ComfyUI and Civitai use.

`--model x.safetensors` loads one through diffusers' `from_single_file`. Here: checking such a file before anything
loads (its header names its tensors), its sha256 (A1111's "Model hash" is its first 10 hex digits; cached, since a
7 GB file takes seconds to read), and writing a diffusers pipeline in that layout, which `make-tiny-model` uses so
that tests load a real single-file checkpoint through the same path as a user's.

The layout (Stability's generative-models `sgm` names; diffusers' single_file_utils reads it back):
  model.diffusion_model.*              the UNet, in input_blocks / middle_block / output_blocks
  first_stage_model.*                  the VAE, in encoder.down / decoder.up (numbered from the bottom)
  conditioner.embedders.0.transformer.*  CLIP ViT-L in transformers' names (the base only)
  conditioner.embedders.N.model.*      OpenCLIP ViT-bigG in open_clip's names (N = 1 in the base, 0 in the refiner)
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from .cache import cache_dir
from .errors import ModelLoadError
from .outputs.files import atomic_write_json
from .untrusted_json import loads as parse_json

log = logging.getLogger("music2image")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
BASE_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
REFINER_OPEN_CLIP_PREFIX = "conditioner.embedders.0.model."
SHORT_HASH_LENGTH = 10  # A1111's "Model hash" (its AutoV2 hash): the first 10 hex digits of the file's sha256


def is_single_file(source: str) -> bool:
    """A path to one .safetensors file (not a folder, not a hub id)."""
    return isinstance(source, str) and source.lower().endswith(".safetensors") and Path(source).expanduser().is_file()


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """"base", "refiner", "vae", or None for a .safetensors file that holds none of these in the original
    layout. Reads the header only (the tensor names), not the weights. Raises if the file is not safetensors."""
    from safetensors import safe_open

    with safe_open(str(Path(path).expanduser()), framework="pt") as handle:
        keys = set(handle.keys())
    if any(key.startswith(UNET_PREFIX) for key in keys):
        if BASE_OPEN_CLIP_PREFIX + "positional_embedding" in keys:
            return "base"
        if REFINER_OPEN_CLIP_PREFIX + "text_projection" in keys:
            return "refiner"
        return None
    if any(key.startswith(("encoder.down.", VAE_PREFIX + "encoder.down.")) for key in keys):
        return "vae"  # a VAE alone, as Stability ships sdxl_vae.safetensors
    return None


def single_file_problems(flag: str, source: str, expected: str) -> list[str]:
    """Why `source` cannot serve as `expected` ("base", "refiner" or "vae"), checked from its header before loading."""
    try:
        kind = checkpoint_kind(source)
    except Exception as exc:  # safetensors raises its own error type for a bad header
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"{flag} {source}: not a readable safetensors file ({first_line})"]
    if kind == expected:
        return []
    if kind is None:
        what = "VAE in the original layout" if expected == "vae" else "SDXL checkpoint (UNet with SDXL text encoders)"
        return [f"{flag} {source}: not a single-file {what}; a LoRA goes to --lora, and a model in diffusers' layout "
                "is given as its folder"]
    names = {"base": "an SDXL base checkpoint", "refiner": "an SDXL refiner checkpoint", "vae": "a VAE alone"}
    return [f"{flag} {source}: this is {names[kind]}, not {names[expected]}"]


# Hashes -------------------------------------------------------------------------------------------------------
def hash_cache_path() -> Path:
    return cache_dir() / "checkpoint_hashes.json"


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """The file's sha256, cached by (path, size, mtime) as A1111 caches its model hashes."""
    try:
        return _sha256_cached(Path(path).expanduser().resolve())["sha256"]
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from exc


def lora_sha256s(path: str | os.PathLike) -> tuple[str, str]:
    """A LoRA file's sha256 (what the recipe compares) and the sha256 of its tensor data, past the safetensors
    header: the hash A1111 writes in `Lora hashes` (its first 12 hex digits; kohya-ss' "addnet" hash, which
    Civitai calls AutoV3), so that editing the file's metadata does not change it. One read, cached."""
    try:
        entry = _sha256_cached(Path(path).expanduser().resolve(), tensors=True)
    except OSError as exc:
        raise ModelLoadError(f"--lora {path}: cannot read the LoRA ({exc.strerror or exc})") from exc
    return entry["sha256"], entry["tensors_sha256"]


def _sha256_cached(path: Path, tensors: bool = False) -> dict:
    stat = path.stat()
    cache_file = hash_cache_path()
    try:
        cache = parse_json(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(str(path))
    if (isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns
            and isinstance(entry.get("sha256"), str) and (not tensors or isinstance(entry.get("tensors_sha256"), str))):
        return entry
    log.info("hashing %s (%.1f GB; once, then cached)", path, stat.st_size / 1e9)
    whole, data = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(8)
        whole.update(head)
        # safetensors: 8 bytes of header length (little-endian), the JSON header, then the tensor data.
        skip = int.from_bytes(head, "little") if tensors and len(head) == 8 else 0
        for block in iter(lambda: handle.read(1 << 22), b""):
            whole.update(block)
            if skip < len(block):
                data.update(block[skip:])
            skip = max(0, skip - len(block))
    entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": whole.hexdigest()}
    if tensors:
        entry["tensors_sha256"] = data.hexdigest()
    cache[str(path)] = entry
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_file, cache)
    except (OSError, UnicodeEncodeError):
        # A read-only cache only costs hashing again next time; so does a path Python holds with surrogates (bytes
        # that are not UTF-8 in the file's name), which UTF-8 JSON cannot write.
        pass
    return entry
