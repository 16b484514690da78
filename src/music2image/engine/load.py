"""Loading: base (and refiner) pipelines from hub ids, folders, single files or `tiny`; VAE, scheduler, LoRA.

Everything here runs once per run, before the first image; nothing here generates.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..errors import ModelLoadError
from ..settings import GenerationSettings
from ..single_file import is_single_file
from ..sources import DEFAULT_MODEL, TINY_MODEL, lora_weights_file

log = logging.getLogger("music2image")


def _resolve_source(source: str, part: str) -> str:
    if source == TINY_MODEL:
        from ..tiny import tiny_model_path

        log.info("using the tiny random SDXL (built once into the cache; images are noise-like by design)")
        return str(tiny_model_path(part))
    return os.path.expanduser(source)


def _hub_revision(source: str | None, filename: str = "model_index.json") -> str | None:
    """The commit of the hub snapshot a hub id was just loaded from (read from the local cache, no network);
    None for `tiny`, local folders and files."""
    if not source or source == TINY_MODEL or os.path.exists(os.path.expanduser(source)):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source, filename)
    except Exception:  # an id the cache cannot hold: nothing to record
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None


def make_scheduler(name: str, config, timestep_spacing: str | None):
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
        TCDScheduler,
        UniPCMultistepScheduler,
    )

    overrides = {} if timestep_spacing is None else {"timestep_spacing": timestep_spacing}
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config, **overrides)
    if name == "euler-a":
        return EulerAncestralDiscreteScheduler.from_config(config, **overrides)
    if name in ("dpm++2m", "dpm++2m-karras"):
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=name.endswith("karras"), **overrides
        )
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config, **overrides)
    # Few-step LoRAs (LCM-LoRA, TCD, Hyper-SD's 1-step) need the scheduler they were distilled for; these two take
    # their timesteps from that schedule, so the spacing override does not reach them (settings refuses it).
    if name == "lcm":
        return LCMScheduler.from_config(config)
    if name == "tcd":
        return TCDScheduler.from_config(config)
    return DDIMScheduler.from_config(config, **overrides)


def _base_config_source(settings: GenerationSettings) -> str:
    """Where the base's diffusers configs are: its folder or hub id, or for a single file its --model-config (or
    Stability's SDXL base, which diffusers infers for an SDXL checkpoint)."""
    if is_single_file(settings.model):
        return _resolve_source(settings.model_config or DEFAULT_MODEL, "base")
    return _resolve_source(settings.model, "base")


def _load_pipeline(pipeline_class, flag: str, source: str, config: str | None, part: str, dtype, components: dict):
    """A diffusers folder or hub id through from_pretrained; a single .safetensors checkpoint (the layout A1111 and
    Civitai use) through from_single_file, with its configs from `config` or, without one, inferred by diffusers
    and read from the hub."""
    try:
        if is_single_file(source):
            options = {} if config is None else {"config": _resolve_source(config, part)}
            log.info("loading the single-file checkpoint %s", source)
            return pipeline_class.from_single_file(
                os.path.expanduser(source), dtype=dtype, add_watermarker=False, **options, **components
            )
        # use_safetensors=True: pickle weights can run code on load, so we never read them.
        return pipeline_class.from_pretrained(
            _resolve_source(source, part), dtype=dtype, use_safetensors=True, add_watermarker=False, **components
        )
    except Exception as exc:  # diffusers raises OSError, ValueError, EnvironmentError, ... for bad sources
        raise _load_error(flag, source, exc, single_file=is_single_file(source) and config is None) from exc


def _fuse_lora(pipe, source: str, scale: float) -> None:
    """Load a LoRA (SDXL-Lightning, LCM-LoRA, Hyper-SD, a style...) into the base and fuse it into the weights:
    no per-step cost afterwards. Needs peft, as diffusers' LoRA loading does."""
    weights = lora_weights_file(source)  # the file the recipe's lora_sha256 is the hash of
    kwargs = {} if weights is None else {"weight_name": weights.name}
    try:
        pipe.load_lora_weights(source if weights is None else str(weights.parent), adapter_name="music2image",
                               **kwargs)
        pipe.fuse_lora(lora_scale=scale)
        pipe.unload_lora_weights()  # the fused weights stay; the separate LoRA layers go
    except ImportError as exc:
        raise ModelLoadError(f"--lora {source}: loading a LoRA needs peft (pip install peft): {exc}") from exc
    except Exception as exc:
        raise _load_error("--lora", source, exc) from exc


def _load_error(flag: str, source: str, exc: Exception, single_file: bool = False) -> ModelLoadError:
    hint = ""
    if single_file:
        hint = (
            f"\nWithout {flag}-config, diffusers reads the configs that describe a single-file checkpoint from the "
            f"Hugging Face hub (a few small files, once); offline, give {flag}-config a local diffusers folder of the "
            f"same architecture (e.g. {flag}-config ~/models/stable-diffusion-xl-base-1.0)."
        )
    elif not os.path.exists(source):
        hint = (
            "\nA hub id downloads from the Hugging Face hub on first use (SDXL is about 7 GB); without network, point "
            f"{flag} at a local diffusers folder, or try the offline tiny model with `{flag} tiny`."
        )
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # diffusers' own text may send the reader to "the stacktrace above", which this one message replaces: the cause
    # it means is the exception's own, said here when there is one.
    first_line = re.sub(r"\s*Please check out the root cause in the stacktrace above\.?", "", first_line)
    cause = exc.__cause__
    if cause is not None and cause is not exc and str(cause).strip():
        first_line += f"; cause: {str(cause).strip().splitlines()[0]}"
    return ModelLoadError(f"{flag} {source}: could not load the model ({first_line}){hint}")


def quiet_libraries() -> None:
    """Our progress bar is the only one: silence the per-step and loading bars of diffusers and transformers."""
    import transformers

    transformers.utils.logging.set_verbosity_error()  # before diffusers imports its transformers-backed pipelines
    import diffusers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()




def load_pipelines(settings: GenerationSettings, dtype):
    """(base, refiner or None, hub revisions) as the settings ask, on the CPU in `dtype`."""
    quiet_libraries()
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    components = {}
    if settings.vae is not None:
        from diffusers import AutoencoderKL

        try:
            if is_single_file(settings.vae):  # the original layout (e.g. Stability's sdxl_vae.safetensors)
                components["vae"] = AutoencoderKL.from_single_file(
                    os.path.expanduser(settings.vae), config=_base_config_source(settings), subfolder="vae",
                    dtype=dtype,
                )
            else:
                components["vae"] = AutoencoderKL.from_pretrained(
                    os.path.expanduser(settings.vae), dtype=dtype, use_safetensors=True
                )
        except Exception as exc:
            raise _load_error("--vae", settings.vae, exc) from exc
    base = _load_pipeline(StableDiffusionXLPipeline, "--model", settings.model, settings.model_config, "base",
                          dtype, components)
    base.scheduler = make_scheduler(settings.scheduler, base.scheduler.config, settings.timestep_spacing)
    if settings.lora:
        _fuse_lora(base, settings.lora, settings.lora_scale)
    refiner = None
    if settings.refiner:
        # Ensemble of expert denoisers: the refiner shares the base's text_encoder_2 and VAE (one copy).
        refiner = _load_pipeline(StableDiffusionXLImg2ImgPipeline, "--refiner-model", settings.refiner_model,
                                 settings.refiner_model_config, "refiner", dtype,
                                 {"text_encoder_2": base.text_encoder_2, "vae": base.vae})
        refiner.scheduler = make_scheduler(settings.scheduler, refiner.scheduler.config, settings.timestep_spacing)
    revisions = {
        "model": _hub_revision(settings.model),
        "model_config": _hub_revision(settings.model_config),
        "refiner_model": _hub_revision(settings.refiner_model) if settings.refiner else None,
        "refiner_model_config": _hub_revision(settings.refiner_model_config) if settings.refiner else None,
        "vae": _hub_revision(settings.vae, "config.json"),
    }
    return base, refiner, {name: commit for name, commit in revisions.items() if commit}
