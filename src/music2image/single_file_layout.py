"""Writing a diffusers SDXL pipeline (or VAE) as one .safetensors file in the original Stability layout (see
single_file.py for the layout), which `make-tiny-model` uses so tests load a real single-file checkpoint through the
same `from_single_file` path as a user's."""

from __future__ import annotations

import os
from pathlib import Path

from .single_file import BASE_OPEN_CLIP_PREFIX, CLIP_L_PREFIX, REFINER_OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX

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
