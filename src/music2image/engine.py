"""Everything diffusers: device and dtype, loading base and refiner, memory modes, generate(batch) → pixels.

The engine knows nothing about files: it turns (prompt, seed) requests into uint8 pixel arrays or a reason.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ModelLoadError, SettingsError
from .settings import DEFAULT_MODEL, TINY_MODEL, GenerationSettings
from .single_file import is_single_file
from .text_encoding import TokenInfo, prompt_embeddings, token_info

log = logging.getLogger("music2image")

# Below this mean brightness (of 1.0) a decode is "all black": the SDXL fp16 VAE overflow signature.
BLACK_IMAGE_MAX = 1.0 / 255.0


class StopRequested(Exception):
    """Raised inside a denoising step when the user asked to stop; the batch in flight is abandoned."""


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    seed: int


@dataclass
class ImageOutcome:
    """Pixels (H, W, 3 uint8) or the reason there are none."""

    pixels: np.ndarray | None = None
    error: str | None = None
    float_pixels: np.ndarray | None = None  # the decoder's [0, 1] floats, only when asked for (tests, comparisons)
    error_type: str | None = None
    notes: list[str] = field(default_factory=list)
    decode_dtype: str | None = None  # what the VAE decode that made the pixels ran in


def available_device(requested: str) -> str:
    """auto → cuda, else mps, else cpu. An explicit device that is absent is an error, never a quiet fallback."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"--device {requested}: no CUDA GPU is visible to PyTorch (torch {torch.__version__})")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise SettingsError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingsError("--device mps: Apple MPS is not available on this machine")
    return requested


def resolved_dtype_name(dtype: str, device: str, offload: str = "none") -> str:
    """auto → float16 on CUDA; on a CPU bfloat16 where it has native bfloat16 arithmetic, else float32; float32 on
    MPS (its float16 SDXL decodes are unreliable). Also refuses the device-dependent combinations that would only
    fail after minutes of loading."""
    if offload not in ("none", "auto") and not device.startswith("cuda"):
        raise SettingsError(f"--offload {offload}: offloading moves weights between CPU and a GPU; it needs --device cuda")
    if dtype != "auto":
        if dtype == "float16" and device == "cpu":
            raise SettingsError("--dtype float16 on cpu: PyTorch's CPU kernels are slow or missing in float16; use float32 or bfloat16")
        return dtype
    if device.startswith("cuda"):
        return "float16"
    return "bfloat16" if device == "cpu" and cpu_native_bfloat16()[0] else "float32"


def cpu_native_bfloat16() -> tuple[bool, str]:
    """(has it, what PyTorch says): whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX tiles),
    asked of PyTorch's own CPU feature checks, never guessed from the CPU's name. With them bfloat16 ran the
    full-size SDXL 2.5x faster than float32 (issue 15, a 2-core EPYC with AVX-512 BF16; docs/PERFORMANCE.md);
    without them bfloat16 has no native path, so float32 stays the choice."""
    import torch

    features = {
        "AVX-512 BF16": getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)(),
        "AMX": getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)(),
    }
    found = [name for name, present in features.items() if present]
    capability = torch.backends.cpu.get_cpu_capability()
    if found:
        return True, f"PyTorch reports {' and '.join(found)} (kernels: {capability})"
    return False, f"PyTorch reports no AVX-512 BF16 or AMX (kernels: {capability})"


def dtype_reason(dtype: str, device: str) -> str:
    """Why the run computes in the dtype it does: for the log and the run's metadata."""
    if dtype != "auto":
        return f"--dtype {dtype}"
    if device == "cpu":
        native, said = cpu_native_bfloat16()
        if native:
            return f"auto: bfloat16, this CPU has native bfloat16 ({said}); --dtype float32 for float32"
        return f"auto: float32, this CPU has no native bfloat16 ({said}); --dtype bfloat16 to try it anyway"
    if device.startswith("cuda"):
        return "auto: float16 on CUDA"
    return f"auto: float32 on {device}"


# SDXL base weights in half precision: UNet 5.1 GB + text encoders 1.6 GB + VAE 0.2 GB; the refiner adds ~4.5 GB.
# With ~3 GB of working memory for a 1024² batch of one, a GPU below this cannot hold everything at once.
BASE_RESIDENT_BYTES = 10e9
REFINER_EXTRA_BYTES = 4.5e9


def memory_mode(settings: GenerationSettings, device: str, dtype_name: str, total_bytes: int | None) -> tuple[str, bool, str | None]:
    """(offload, vae_tiling, why) for this run. `--offload auto` turns on model offload and VAE tiling only when
    the GPU is too small for the whole pipeline; anything the user chose explicitly is kept as is."""
    if settings.offload != "auto":
        return settings.offload, settings.vae_tiling, None
    if not device.startswith("cuda") or total_bytes is None:
        return "none", settings.vae_tiling, None
    need = (BASE_RESIDENT_BYTES + (REFINER_EXTRA_BYTES if settings.refiner else 0)) * (2 if dtype_name == "float32" else 1)
    if total_bytes >= need:
        return "none", settings.vae_tiling, None
    why = (f"the GPU has {total_bytes / 2**30:.1f} GiB, less than the ~{need / 2**30:.0f} GiB this pipeline needs at "
           f"once: using model offload and VAE tiling (slower; --offload none to keep everything on the GPU)")
    return "model", True, why


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _resolve_source(source: str, part: str) -> str:
    if source == TINY_MODEL:
        from .tiny import tiny_model_path

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


def _make_scheduler(name: str, config, timestep_spacing: str | None):
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
    path = Path(os.path.expanduser(source))
    kwargs = {}
    if path.is_file():
        path, kwargs = path.parent, {"weight_name": path.name}
    try:
        pipe.load_lora_weights(str(path) if path.exists() else source, adapter_name="music2image", **kwargs)
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
    return ModelLoadError(f"{flag} {source}: could not load the model ({first_line}){hint}")


def _quiet_libraries() -> None:
    """Our progress bar is the only one: silence the per-step and loading bars of diffusers and transformers."""
    import transformers

    transformers.utils.logging.set_verbosity_error()  # before diffusers imports its transformers-backed pipelines
    import diffusers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


class Engine:
    """Loaded SDXL base (and refiner) on one device, ready to turn requests into pixels."""

    def __init__(self, settings: GenerationSettings, device: str, dtype_name: str, base, refiner=None):
        self.settings = settings
        self.device = device
        self.dtype_name = dtype_name
        self.base = base
        self.refiner = refiner
        self.decode_dtype_name = self._choose_decode_dtype()
        self.memory_notes: list[str] = []
        self.revisions: dict[str, str] = {}  # hub commit of each model loaded from the hub
        self.offload, self.vae_tiling = settings.offload, settings.vae_tiling  # what _place() put in effect
        self._oom_fallback_used = False
        self._keep_float = False

    # 1. Loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: GenerationSettings, device: str | None = None) -> "Engine":
        _quiet_libraries()
        import torch
        from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

        device = device or available_device(settings.device)
        dtype_name = resolved_dtype_name(settings.dtype, device, settings.offload)
        dtype = _torch_dtype(dtype_name)
        started = time.perf_counter()
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
        base.scheduler = _make_scheduler(settings.scheduler, base.scheduler.config, settings.timestep_spacing)
        if settings.lora:
            _fuse_lora(base, settings.lora, settings.lora_scale)
        refiner = None
        if settings.refiner:
            # Ensemble of expert denoisers: the refiner shares the base's text_encoder_2 and VAE (one copy).
            refiner = _load_pipeline(StableDiffusionXLImg2ImgPipeline, "--refiner-model", settings.refiner_model,
                                     settings.refiner_model_config, "refiner", dtype,
                                     {"text_encoder_2": base.text_encoder_2, "vae": base.vae})
            refiner.scheduler = _make_scheduler(settings.scheduler, refiner.scheduler.config, settings.timestep_spacing)
        engine = cls(settings, device, dtype_name, base, refiner)
        revisions = {
            "model": _hub_revision(settings.model),
            "model_config": _hub_revision(settings.model_config),
            "refiner_model": _hub_revision(settings.refiner_model) if settings.refiner else None,
            "refiner_model_config": _hub_revision(settings.refiner_model_config) if settings.refiner else None,
            "vae": _hub_revision(settings.vae, "config.json"),
        }
        engine.revisions = {name: commit for name, commit in revisions.items() if commit}
        total = torch.cuda.get_device_properties(device).total_memory if device.startswith("cuda") else None
        offload, vae_tiling, why = memory_mode(settings, device, dtype_name, total)
        if why:
            log.warning(why)
            engine.memory_notes.append(f"model_offload+vae_tiling: {why}")
        engine._place(offload, vae_tiling)
        if settings.compile:
            # Fixed shapes (dynamic=False): the run pads its last batch so one graph serves every batch.
            for pipe in engine._pipelines():
                pipe.unet = torch.compile(pipe.unet, dynamic=False)
            base.vae.decoder = torch.compile(base.vae.decoder, dynamic=False)
        log.info("loaded %s in %.1f s", settings.model, time.perf_counter() - started)
        if torch.cuda.is_available() and device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        return engine

    def _pipelines(self):
        return [p for p in (self.base, self.refiner) if p is not None]

    def _place(self, offload: str, vae_tiling: bool) -> None:
        """Put the pipelines on the device (or offload them) and remember the memory mode that is now in effect."""
        self.offload, self.vae_tiling = offload, vae_tiling
        for pipe in self._pipelines():
            if offload == "model":
                pipe.enable_model_cpu_offload(device=self.device)
            elif offload == "sequential":
                pipe.enable_sequential_cpu_offload(device=self.device)
            else:
                pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)
        if vae_tiling:
            self.base.vae.enable_tiling()

    def warm_up(self, batch_size: int) -> float:
        """Compile (or just warm) the graphs at the run's batch shape with a 1-step throwaway batch; seconds taken."""
        started = time.perf_counter()
        settings, self.settings = self.settings, self.settings.replace(steps=1)
        try:
            self.generate([ImageRequest("warm-up", 0)] * batch_size)
        finally:
            self.settings = settings
        return time.perf_counter() - started

    def _choose_decode_dtype(self) -> str:
        # The SDXL VAE overflows in float16 (its config says force_upcast). diffusers then decodes in float32;
        # bfloat16 has float32's range at float16's cost, so on CUDA we decode in bfloat16 instead.
        if self.dtype_name == "float16" and getattr(self.base.vae.config, "force_upcast", False):
            return "bfloat16" if self.device.startswith("cuda") else "float32"
        return self.dtype_name

    # 2. Generation ----------------------------------------------------------------------------------------
    def generate(
        self, requests: list[ImageRequest], should_stop: Callable[[], bool] = lambda: False, keep_float: bool = False
    ) -> list[ImageOutcome]:
        """One outcome per request, in order. A failure of the whole batch is retried smaller (CUDA OOM: halve;
        anything else: one by one) so that one bad prompt fails alone. StopRequested propagates."""
        import torch

        self._keep_float = keep_float
        with torch.inference_mode():
            return self._generate_isolated(requests, should_stop)

    def _generate_isolated(self, requests, should_stop) -> list[ImageOutcome]:
        import torch

        try:
            return self._generate_batch(requests, should_stop)
        except StopRequested:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            self._free_memory()
            if len(requests) > 1:
                half = len(requests) // 2
                log.warning("CUDA out of memory with a batch of %d: retrying as batches of %d", len(requests), half)
                return self._generate_isolated(requests[:half], should_stop) + self._generate_isolated(
                    requests[half:], should_stop
                )
            if not self._oom_fallback_used:
                self._oom_fallback_used = True
                log.warning("CUDA out of memory at batch 1: turning on VAE tiling and model offload, retrying once")
                self.enable_low_memory()
                return self._generate_isolated(requests, should_stop)
            return [ImageOutcome(error=f"CUDA out of memory: {exc}".splitlines()[0], error_type=type(exc).__name__)]
        except Exception as exc:
            if len(requests) > 1:
                log.warning("batch of %d failed (%s: %s); retrying one by one", len(requests), type(exc).__name__, exc)
                return [outcome for r in requests for outcome in self._generate_isolated([r], should_stop)]
            return [ImageOutcome(error=str(exc) or type(exc).__name__, error_type=type(exc).__name__)]

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def enable_low_memory(self) -> None:
        self._place("model" if self.device.startswith("cuda") else self.offload, vae_tiling=True)
        self.memory_notes.append("vae_tiling+model_offload after OOM")

    def token_info(self, prompt: str) -> TokenInfo:
        return token_info(self.base.tokenizer_2, prompt)

    def _generate_batch(self, requests: list[ImageRequest], should_stop) -> list[ImageOutcome]:
        s = self.settings
        if s.truncate_prompts:
            return self._run_group(requests, should_stop, chunks=None)
        # Prompts of different chunk counts have embeddings of different lengths: one pipeline call per count,
        # so no prompt is padded because of its neighbours (its image stays independent of the batch).
        negative_chunks = self.token_info(s.negative_prompt).chunks if s.negative_prompt else 1
        groups: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(max(self.token_info(request.prompt).chunks, negative_chunks), []).append(index)
        outcomes: list[ImageOutcome | None] = [None] * len(requests)
        for chunks, indices in groups.items():
            for index, outcome in zip(indices, self._run_group([requests[i] for i in indices], should_stop, chunks)):
                outcomes[index] = outcome
        return outcomes

    def _run_group(self, requests: list[ImageRequest], should_stop, chunks: int | None) -> list[ImageOutcome]:
        import torch

        s = self.settings
        prompts = [r.prompt for r in requests]
        # One CPU generator per image: its noise depends only on its own seed, never on the batch it is in,
        # and is the same on every device.
        generators = [torch.Generator("cpu").manual_seed(r.seed) for r in requests]

        def on_step_end(pipe, step, timestep, callback_kwargs):
            if should_stop():
                raise StopRequested()
            return callback_kwargs

        def text_inputs(pipe) -> dict:
            if chunks is None:  # --truncate-prompts: the stock encoder, which keeps the first 75 tokens
                negative = [s.negative_prompt] * len(prompts) if s.negative_prompt else None
                return {"prompt": prompts, "negative_prompt": negative}
            return prompt_embeddings(pipe, prompts, s.negative_prompt, chunks, pipe._execution_device, pipe.unet.dtype)

        common = dict(
            guidance_scale=s.guidance_scale,
            num_inference_steps=s.steps,
            generator=generators,
            output_type="latent",
            callback_on_step_end=on_step_end,
        )
        if self.refiner is None:
            latents = self.base(width=s.width, height=s.height, **text_inputs(self.base), **common).images
        else:
            latents = self.base(
                width=s.width, height=s.height, denoising_end=s.refiner_switch, **text_inputs(self.base), **common
            ).images
            latents = self.refiner(
                image=latents, denoising_start=s.refiner_switch, **text_inputs(self.refiner), **common
            ).images
        return [self._decode_checked(latents[i : i + 1]) for i in range(len(requests))]

    def _decode_checked(self, latents) -> ImageOutcome:
        """Decode one latent; a NaN or all-black result is decoded again in float32 before it counts as failed."""
        decode_dtype = self.decode_dtype_name
        image, problem = self._decode(latents, decode_dtype)
        notes = []
        if problem is not None and decode_dtype != "float32":
            log.warning("%s after a %s VAE decode: decoding again in float32", problem, decode_dtype)
            notes.append(f"{problem} in {decode_dtype}; decoded again in float32")
            decode_dtype = "float32"
            image, problem = self._decode(latents, decode_dtype)
        if problem is not None:
            return ImageOutcome(error=problem, error_type="BadDecode", notes=notes)
        # The same float → uint8 rounding as diffusers' numpy_to_pil.
        pixels = (image * 255).round().astype("uint8")
        return ImageOutcome(pixels=pixels, notes=notes, float_pixels=image if self._keep_float else None,
                            decode_dtype=decode_dtype)

    def _decode(self, latents, dtype_name: str) -> tuple[np.ndarray | None, str | None]:
        import torch

        vae = self.base.vae
        if torch.isnan(latents).any():
            return None, "NaN latents"
        dtype = _torch_dtype(dtype_name)
        original_dtype = vae.dtype
        if dtype != original_dtype:
            vae.to(dtype=dtype)
        try:
            config = vae.config
            if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
                mean = torch.tensor(config.latents_mean).view(1, 4, 1, 1).to(latents.device, dtype)
                std = torch.tensor(config.latents_std).view(1, 4, 1, 1).to(latents.device, dtype)
                scaled = latents.to(dtype) * std / config.scaling_factor + mean
            else:
                scaled = latents.to(dtype) / config.scaling_factor
            decoded = vae.decode(scaled.to(self.base._execution_device), return_dict=False)[0]
        finally:
            if dtype != original_dtype:
                vae.to(dtype=original_dtype)
        if torch.isnan(decoded).any():
            return None, "NaN in the decoded image"
        image = self.base.image_processor.postprocess(decoded.float(), output_type="np")[0]
        if float(image.mean()) < BLACK_IMAGE_MAX:
            return None, "all-black image"
        return image, None

    def peak_memory_bytes(self) -> int | None:
        import torch

        if self.device.startswith("cuda") and torch.cuda.is_available():
            return int(torch.cuda.max_memory_allocated(self.device))
        return None

    def auto_batch_size(self) -> int:
        """The batch size for `--batch-size auto`: 1 off CUDA; on CUDA, from free memory at this image size."""
        import torch

        if not self.device.startswith("cuda") or self.offload != "none":
            return 1
        free, _total = torch.cuda.mem_get_info(self.device)
        # Rough activation cost of one image (with its CFG twin) in the SDXL UNet at half precision, scaled
        # by pixel count; decode runs one image at a time, so it does not grow with the batch.
        per_image = 1.5e9 * (self.settings.width * self.settings.height) / (1024 * 1024)
        return max(1, min(16, int(free * 0.7 // per_image)))
