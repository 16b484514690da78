"""A full-size SDXL-architecture base pipeline with random weights, built in code (no download).

The shapes are those of stabilityai/stable-diffusion-xl-base-1.0's published configs (UNet 2.57 B parameters,
CLIP ViT-L and OpenCLIP ViT-bigG text encoders, the SDXL VAE), so a forward pass costs what the real one costs;
speed does not depend on the weight values. Saved once (float16 safetensors, about 6.5 GB) and loaded through
the same `from_pretrained` path as the real model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20),
    transformer_layers_per_block=(1, 2, 10),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # 6 time ids × 256 + 1280 pooled
    norm_num_groups=32,
)
# stabilityai/stable-diffusion-xl-refiner-1.0's UNet (2.26 B parameters): Stability's sd_xl_refiner.yaml has
# model_channels 384, channel_mult [1, 2, 4, 4], attention at the middle two levels, depth 4, 64-wide heads,
# context 1280 (OpenCLIP bigG only) and 5 time ids (an aesthetic score instead of the target size).
REFINER_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(384, 768, 1536, 1536),
    layers_per_block=2,
    attention_head_dim=(6, 12, 24, 24),
    transformer_layers_per_block=4,
    cross_attention_dim=1280,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2560,  # 5 time ids × 256 + 1280 pooled
    norm_num_groups=32,
)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              hidden_act="quick_gelu", projection_dim=768)
CLIP_BIGG = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 hidden_act="gelu", projection_dim=1280)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           layers_per_block=2, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True)


def build(directory: Path) -> Path:
    import torch

    from music2image.tiny import build_tokenizer

    tokenizer = build_tokenizer()  # a small BPE vocabulary; the encoders keep CLIP's real 49408-row embeddings
    common = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)  # built in half precision: about 7 GB of RAM instead of 14
    try:
        pipe = _pipeline(tokenizer, common)
    finally:
        torch.set_default_dtype(torch.float32)
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory


def _pipeline(tokenizer, common):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    return StableDiffusionXLPipeline(
        vae=AutoencoderKL(**VAE),
        text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L, **common)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG, **common)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=UNet2DConditionModel(**UNET),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"),
        add_watermarker=False,
    )


def full_random_path() -> Path:
    from music2image.tiny import cache_dir

    target = cache_dir() / "full-random-sdxl-v1"
    if not (target / "model_index.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".full-", dir=target.parent))
        try:
            build(staging)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def unet_parameters(path: Path) -> int:
    from diffusers import UNet2DConditionModel

    return sum(p.numel() for p in UNet2DConditionModel.from_pretrained(path, subfolder="unet").parameters())


if __name__ == "__main__":
    path = full_random_path()
    print(f"{path}: UNet {unet_parameters(path) / 1e9:.2f} B parameters")
