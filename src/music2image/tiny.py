"""A tiny random SDXL (base + refiner) and a tiny random CLIP built in code, for tests, CI and offline smoke runs.

Same architecture families and the same `save_pretrained` / `from_pretrained` path as real SDXL, so every
test runs the real diffusers pipelines. Shapes follow diffusers' own fast SDXL tests (`get_dummy_components`),
except the VAE, which has 4 levels so that latents are 1/8 of the image as in real SDXL.
Weights come from fixed seeds: building twice gives byte-identical files, hence byte-identical images.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .cache import cache_dir

TINY_MODEL_VERSION = 2
TINY_CLIP_VERSION = 1  # cached apart from the SDXL parts: adding CLIP did not change (or rebuild) the SDXL ones
# Common words of visual prompts get one token each, like in real CLIP; the rest falls back to characters.
_WORDS = """a an the of and with in on at by to from into over under through across above below
light dark bright soft warm cool cold golden blue red green purple orange yellow pink violet amber teal crimson
silver black white gray grey color colors colour palette vivid muted pastel neon glowing glow shadow shadows
sky sea ocean water river rain storm cloud clouds sun sunset sunrise moon night dawn dusk fog mist snow fire
forest mountain mountains field city street stage concert crowd dancer dancers figure figures silhouette
abstract painting oil watercolor digital art style texture brush strokes lines shapes geometric flowing
swirling calm serene melancholic energetic joyful dreamy mysterious dramatic gentle intense quiet vibrant
music musical rhythm melody sound waves notes piano guitar violin drums orchestra jazz
landscape portrait scene composition wide close view detailed cinematic lighting atmosphere mood
""".split()


def _bytes_to_unicode() -> dict[int, str]:
    # The byte → printable-character table of GPT-2/CLIP byte-level BPE (Radford et al. 2019).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def build_tokenizer():
    """A real CLIPTokenizer with a small BPE vocabulary: every byte, and whole tokens for common prompt words."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        # Build the word left to right: w + o → wo, wo + r → wor, ..., the last piece carries </w>.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merged = current + piece
            if merged not in vocab:
                merges.append((current, piece))
                vocab[merged] = len(vocab)
            current = merged
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


# Like real SDXL (CLIP ViT-L 768 wide, OpenCLIP ViT-bigG 1280 wide), the two text encoders differ in width: loading
# a single-file checkpoint tells them apart by that width (diffusers' single_file_utils).
TEXT_WIDTH, TEXT_2_WIDTH, TEXT_2_PROJECTION = 32, 48, 32


def _text_encoders(tokenizer):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def config(width: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=width,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=len(tokenizer),
            hidden_act="gelu",
            projection_dim=TEXT_2_PROJECTION,
            max_position_embeddings=77,
        )

    torch.manual_seed(1)
    text_encoder = CLIPTextModel(config(TEXT_WIDTH))
    torch.manual_seed(2)
    text_encoder_2 = CLIPTextModelWithProjection(config(TEXT_2_WIDTH))
    return text_encoder, text_encoder_2


def _vae():
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(3)
    return AutoencoderKL(
        block_out_channels=[8, 16, 16, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )


def _unet(seed: int, cross_attention_dim: int, time_ids: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        # SDXL's added condition: time_ids (6 base / 5 refiner, each embedded to 8) + text_encoder_2's pooled output.
        projection_class_embeddings_input_dim=time_ids * 8 + TEXT_2_PROJECTION,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=1,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    # Real SDXL base's scheduler settings.
    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )


def make_tiny_clip(directory: str | os.PathLike) -> Path:
    """Write a tiny random CLIPModel and its CLIPProcessor to DIRECTORY (for `evaluate --clip-model`).

    The same classes and `save_pretrained` / `from_pretrained` path as openai/clip-vit-large-patch14, at toy
    sizes: 32-pixel images in 8-pixel patches, 2 layers per tower, 16-wide shared embedding space."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    directory = Path(directory)
    tokenizer = build_tokenizer()
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "vocab_size": len(tokenizer), "max_position_embeddings": 77,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(6)
    model = CLIPModel(config)
    # CLIP's own preprocessing (resize the short side, centre crop, CLIP's mean and std), at the tiny input size.
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(directory, safe_serialization=True)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def make_tiny_model(directory: str | os.PathLike) -> Path:
    """Write a tiny SDXL base to DIRECTORY/base and a tiny refiner to DIRECTORY/refiner (diffusers folders), the
    same as single files DIRECTORY/base.safetensors and DIRECTORY/refiner.safetensors, and a tiny CLIP to
    DIRECTORY/clip; returns DIRECTORY."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    from .single_file_layout import save_single_file

    directory = Path(directory)
    tokenizer = build_tokenizer()
    text_encoder, text_encoder_2 = _text_encoders(tokenizer)
    vae = _vae()
    base = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=_unet(seed=4, cross_attention_dim=TEXT_WIDTH + TEXT_2_WIDTH, time_ids=6),
        scheduler=_scheduler(),
        add_watermarker=False,
    )
    base.save_pretrained(directory / "base", safe_serialization=True)
    # The refiner has no first text encoder and conditions on an aesthetic score (5 time ids), like
    # stabilityai/stable-diffusion-xl-refiner-1.0; it shares text_encoder_2 and the VAE with the base.
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=tokenizer,
        unet=_unet(seed=5, cross_attention_dim=TEXT_2_WIDTH, time_ids=5),
        scheduler=_scheduler(),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )
    refiner.save_pretrained(directory / "refiner", safe_serialization=True)
    # The same weights as single-file checkpoints in the original layout (what A1111/Civitai users have), for
    # `--model DIR/base.safetensors --model-config DIR/base`.
    save_single_file(base, directory / "base.safetensors")
    save_single_file(refiner, directory / "refiner.safetensors")
    make_tiny_clip(directory / "clip")
    return directory


TINY_MODEL_PARTS = ("base", "refiner", "base.safetensors", "refiner.safetensors", "clip")


def write_tiny_model(directory: str | os.PathLike) -> Path:
    """`music2image make-tiny-model DIRECTORY`: make_tiny_model built in a staging folder inside DIRECTORY, then
    moved into place part by part (replacing the parts of an earlier tiny model there), so that a failure (disk
    full, Ctrl-C) leaves no half-written model. A place it cannot write is one message before anything is built."""
    from .errors import DiskError, OutputDirError
    from .safe_paths import creation_problem

    directory = Path(directory)
    problem = creation_problem(directory)  # a file in the way, or no permission in it or the folder it goes in
    if problem:
        raise OutputDirError(f"{directory}: cannot write the tiny model there: {problem}; nothing was written")
    created = not os.path.lexists(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=directory))
        try:
            make_tiny_model(staging)
            for part in TINY_MODEL_PARTS:
                target = directory / part
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(staging / part, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException as exc:
        if created:  # only what this command made: the folder did not exist before
            shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, OSError):
            raise DiskError(f"{directory}: cannot write the tiny model ({exc.strerror or exc})") from exc
        raise
    return directory


def _cached_build(name: str, complete: str, build) -> Path:
    """cache_dir()/NAME, made by `build(folder)` once, atomically (built in a temporary folder, then renamed);
    COMPLETE is a file inside it that only a finished build has."""
    target = cache_dir() / name
    if not (target / complete).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
        try:
            build(staging)
            try:
                os.replace(staging, target)
            except OSError:
                if not (target / complete).is_file():  # not built by a concurrent process
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def tiny_model_path(part: str) -> Path:
    """The cached tiny model (built once, atomically, on first use): part is "base", "refiner" or "clip"."""
    if part == "clip":
        return _cached_build(f"tiny-clip-v{TINY_CLIP_VERSION}", "config.json", make_tiny_clip)
    return _cached_build(f"tiny-sdxl-v{TINY_MODEL_VERSION}", "refiner/model_index.json", make_tiny_model) / part
