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
import json
import logging
import os
from pathlib import Path

from .errors import ModelLoadError
from .outputs import atomic_write_json

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
def _hash_cache_path() -> Path:
    from .tiny import cache_dir

    return cache_dir() / "checkpoint_hashes.json"


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """The file's sha256, cached by (path, size, mtime) as A1111 caches its model hashes."""
    try:
        return _sha256_cached(Path(path).expanduser().resolve())
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from exc


def _sha256_cached(path: Path) -> str:
    stat = path.stat()
    cache_file = _hash_cache_path()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(str(path))
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry["sha256"]
    log.info("hashing %s (%.1f GB; once, then cached)", path, stat.st_size / 1e9)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    cache[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_file, cache)
    except OSError:
        pass  # a read-only cache only costs hashing again next time
    return digest.hexdigest()


# Writing the layout -----------------------------------------------------------------------------------------
_UNET_RESNET_NAMES = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                      ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_ATTENTION_NAMES = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))
_VAE_SAME_NAMES = ("encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.", "decoder.conv_out.", "quant_conv.",
                   "post_quant_conv.")
_OPEN_CLIP_NAMES = (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                    ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj"))


def _rename(suffix: str, names) -> str:
    """Rename whole dotted components: `0.conv_shortcut.weight` → `0.nin_shortcut.weight`."""
    dotted = f".{suffix}."
    for new, old in names:
        if f".{new}." in dotted:
            dotted = dotted.replace(f".{new}.", f".{old}.", 1)
            break
    return dotted[1:-1]


def _unet_prefixes(config) -> dict[str, tuple[str, tuple]]:
    """diffusers module prefix → (sgm prefix, renames within it)."""
    per_block = config.layers_per_block
    prefixes = {"time_embedding.linear_1": ("time_embed.0", ()), "time_embedding.linear_2": ("time_embed.2", ()),
                "add_embedding.linear_1": ("label_emb.0.0", ()), "add_embedding.linear_2": ("label_emb.0.2", ()),
                "conv_in": ("input_blocks.0.0", ()), "conv_norm_out": ("out.0", ()), "conv_out": ("out.2", ())}
    for block in range(len(config.down_block_types)):
        for layer in range(per_block):
            index = 1 + block * (per_block + 1) + layer
            prefixes[f"down_blocks.{block}.resnets.{layer}"] = (f"input_blocks.{index}.0", _UNET_RESNET_NAMES)
            prefixes[f"down_blocks.{block}.attentions.{layer}"] = (f"input_blocks.{index}.1", ())
        prefixes[f"down_blocks.{block}.downsamplers.0.conv"] = (f"input_blocks.{1 + block * (per_block + 1) + per_block}.0.op", ())
    prefixes["mid_block.resnets.0"] = ("middle_block.0", _UNET_RESNET_NAMES)
    prefixes["mid_block.attentions.0"] = ("middle_block.1", ())
    prefixes["mid_block.resnets.1"] = ("middle_block.2", _UNET_RESNET_NAMES)
    for block, kind in enumerate(config.up_block_types):
        for layer in range(per_block + 1):
            index = block * (per_block + 1) + layer
            prefixes[f"up_blocks.{block}.resnets.{layer}"] = (f"output_blocks.{index}.0", _UNET_RESNET_NAMES)
            prefixes[f"up_blocks.{block}.attentions.{layer}"] = (f"output_blocks.{index}.1", ())
        last = block * (per_block + 1) + per_block
        prefixes[f"up_blocks.{block}.upsamplers.0.conv"] = (f"output_blocks.{last}.{2 if 'CrossAttn' in kind else 1}.conv", ())
    return prefixes


def _vae_prefixes(config) -> dict[str, tuple[str, tuple]]:
    resnet = (("conv_shortcut", "nin_shortcut"),)
    prefixes = {"encoder.conv_norm_out": ("encoder.norm_out", ()), "decoder.conv_norm_out": ("decoder.norm_out", ())}
    blocks = len(config.down_block_types)
    for part in ("encoder", "decoder"):
        for k in (0, 1):
            prefixes[f"{part}.mid_block.resnets.{k}"] = (f"{part}.mid.block_{k + 1}", resnet)
        prefixes[f"{part}.mid_block.attentions.0"] = (f"{part}.mid.attn_1", _VAE_ATTENTION_NAMES)
    for block in range(blocks):
        prefixes[f"encoder.down_blocks.{block}.resnets"] = (f"encoder.down.{block}.block", resnet)
        prefixes[f"encoder.down_blocks.{block}.downsamplers.0.conv"] = (f"encoder.down.{block}.downsample.conv", ())
        # The decoder's up blocks are numbered from the bottom in the original layout.
        prefixes[f"decoder.up_blocks.{block}.resnets"] = (f"decoder.up.{blocks - 1 - block}.block", resnet)
        prefixes[f"decoder.up_blocks.{block}.upsamplers.0.conv"] = (f"decoder.up.{blocks - 1 - block}.upsample.conv", ())
    return prefixes


def _convert(state_dict: dict, prefixes: dict[str, tuple[str, tuple]], same_names=()) -> dict:
    converted = {}
    ordered = sorted(prefixes, key=len, reverse=True)  # the most specific prefix wins
    for key, tensor in state_dict.items():
        for prefix in ordered:
            if key.startswith(prefix + "."):
                new_prefix, names = prefixes[prefix]
                converted[new_prefix + "." + _rename(key[len(prefix) + 1:], names)] = tensor
                break
        else:
            if not key.startswith(same_names):
                raise ValueError(f"no single-file name for tensor {key}")
            converted[key] = tensor  # named alike in both layouts
    return converted


def _open_clip(encoder) -> dict:
    """CLIPTextModelWithProjection → open_clip's names: q/k/v fused into in_proj, projection transposed."""
    state = {k.removeprefix("text_model."): v for k, v in encoder.state_dict().items()}
    out = {"token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
           "positional_embedding": state.pop("embeddings.position_embedding.weight"),
           "ln_final.weight": state.pop("final_layer_norm.weight"),
           "ln_final.bias": state.pop("final_layer_norm.bias"),
           "text_projection": state.pop("text_projection.weight").T.contiguous()}
    import torch

    for layer in range(encoder.config.num_hidden_layers):
        old, new = f"encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for leaf in ("weight", "bias"):
            out[new + f"attn.in_proj_{leaf}"] = torch.cat(
                [state.pop(old + f"self_attn.{p}_proj.{leaf}") for p in ("q", "k", "v")])
    for key, tensor in state.items():
        if key.startswith("encoder.layers."):
            layer, _, rest = key[len("encoder.layers."):].partition(".")
            out[f"transformer.resblocks.{layer}." + _rename(rest, _OPEN_CLIP_NAMES)] = tensor
        elif key != "embeddings.position_ids":
            raise ValueError(f"no open_clip name for text encoder tensor {key}")
    return out


def _vae_state_dict(vae) -> dict:
    out = {}
    for key, tensor in _convert(vae.state_dict(), _vae_prefixes(vae.config), _VAE_SAME_NAMES).items():
        if ".mid.attn_1." in key and key.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # the original attention projections are 1x1 convolutions
        out[VAE_PREFIX + key] = tensor
    return out


def single_file_state_dict(pipe) -> dict:
    """A StableDiffusionXL(Img2Img)Pipeline's weights under the original single-file names."""
    out = _vae_state_dict(pipe.vae)
    for key, tensor in _convert(pipe.unet.state_dict(), _unet_prefixes(pipe.unet.config)).items():
        out[UNET_PREFIX + key] = tensor
    if pipe.text_encoder is not None:  # the base: CLIP ViT-L keeps transformers' names
        for key, tensor in pipe.text_encoder.state_dict().items():
            out[CLIP_L_PREFIX + ("" if key.startswith("text_model.") else "text_model.") + key] = tensor
        open_clip_prefix = BASE_OPEN_CLIP_PREFIX
    else:
        open_clip_prefix = REFINER_OPEN_CLIP_PREFIX
    for key, tensor in _open_clip(pipe.text_encoder_2).items():
        out[open_clip_prefix + key] = tensor
    return out  # in the weights' own dtype


def save_single_file(pipe_or_vae, path: str | os.PathLike) -> Path:
    """Write a pipeline as one original-layout .safetensors checkpoint, or a VAE alone as Stability ships
    sdxl_vae.safetensors (original names, no prefix). Written to a temporary name and renamed: never half a file."""
    from safetensors.torch import save_file

    if hasattr(pipe_or_vae, "unet"):
        state = single_file_state_dict(pipe_or_vae)
    else:
        state = {k.removeprefix(VAE_PREFIX): v for k, v in _vae_state_dict(pipe_or_vae).items()}
    state = {key: tensor.detach().contiguous() for key, tensor in state.items()}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(tmp), metadata={"format": "pt"})  # streams to disk: no second copy of 7 GB in memory
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
