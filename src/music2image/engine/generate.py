"""The loaded engine: SDXL base (and refiner) on one device, turning (prompt, seed) requests into pixels.

The engine knows nothing about files. It changes no state per call: the only change after loading is the
low-memory fallback after an out-of-memory error, and every outcome says which memory mode made it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..settings import GenerationSettings
from ..text_encoding import TokenInfo, prompt_embeddings, token_info
from .device import available_device, memory_mode, resolved_dtype_name, torch_dtype
from .load import load_pipelines

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
    offload: str | None = None  # the memory mode in effect when it was made (it can change after an OOM)
    vae_tiling: bool | None = None



class Engine:
    """Loaded SDXL base (and refiner) on one device, ready to turn requests into pixels."""

    def __init__(self, settings: GenerationSettings, device: str, dtype_name: str, base, refiner=None,
                 revisions: dict | None = None):
        self.settings = settings
        self.device = device
        self.dtype_name = dtype_name
        self.base = base
        self.refiner = refiner
        self.revisions = revisions or {}  # hub commit of each model loaded from the hub
        self.decode_dtype_name = self._choose_decode_dtype()
        if self.decode_dtype_name != dtype_name:  # once, not around every decode
            base.vae.to(dtype=torch_dtype(self.decode_dtype_name))
        self.memory_notes: list[str] = []
        self.offload, self.vae_tiling = settings.offload, settings.vae_tiling  # what _place() put in effect
        self._oom_fallback_used = False

    # 1. Loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: GenerationSettings, device: str | None = None) -> "Engine":
        import torch

        device = device or available_device(settings.device)
        dtype_name = resolved_dtype_name(settings.dtype, device, settings.offload)
        started = time.perf_counter()
        base, refiner, revisions = load_pipelines(settings, torch_dtype(dtype_name))
        engine = cls(settings, device, dtype_name, base, refiner, revisions)
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
        self.generate([ImageRequest("warm-up", 0)] * batch_size, steps=1)
        return time.perf_counter() - started

    def _choose_decode_dtype(self) -> str:
        # The SDXL VAE overflows in float16 (its config says force_upcast). diffusers then decodes in float32;
        # bfloat16 has float32's range at float16's cost, so on CUDA we decode in bfloat16 instead.
        if self.dtype_name == "float16" and getattr(self.base.vae.config, "force_upcast", False):
            return "bfloat16" if self.device.startswith("cuda") else "float32"
        return self.dtype_name

    # 2. Generation ----------------------------------------------------------------------------------------
    def generate(self, requests: list[ImageRequest], should_stop: Callable[[], bool] = lambda: False,
                 keep_float: bool = False, steps: int | None = None) -> list[ImageOutcome]:
        """One outcome per request, in order. A failure of the whole batch is retried smaller (CUDA OOM: halve;
        anything else: one by one) so that one bad prompt fails alone. StopRequested propagates.
        `keep_float`: also return the decoder's float pixels; `steps`: another step count (the warm-up's)."""
        import torch

        call = _Call(should_stop, keep_float, steps or self.settings.steps)
        with torch.inference_mode():
            return self._generate_isolated(requests, call)

    def _generate_isolated(self, requests, call: "_Call") -> list[ImageOutcome]:
        import torch

        try:
            return self.run_batch(requests, call)
        except StopRequested:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            self._free_memory()
            if len(requests) > 1:
                half = len(requests) // 2
                log.warning("CUDA out of memory with a batch of %d: retrying as batches of %d", len(requests), half)
                return self._generate_isolated(requests[:half], call) + self._generate_isolated(requests[half:], call)
            if not self._oom_fallback_used:
                self._oom_fallback_used = True
                log.warning("CUDA out of memory at batch 1: turning on VAE tiling and model offload, retrying once")
                self.enable_low_memory()
                return self._generate_isolated(requests, call)
            return [ImageOutcome(error=f"CUDA out of memory: {exc}".splitlines()[0], error_type=type(exc).__name__)]
        except Exception as exc:
            if len(requests) > 1:
                log.warning("batch of %d failed (%s: %s); retrying one by one", len(requests), type(exc).__name__, exc)
                return [outcome for r in requests for outcome in self._generate_isolated([r], call)]
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

    def run_batch(self, requests: list[ImageRequest], call: "_Call") -> list[ImageOutcome]:
        """One batch through the pipelines, no retries: raises what the pipeline raises. (Tests wrap this to
        plant failures; `generate` is what callers use.)"""
        if self.settings.truncate_prompts:
            return self._run_group(requests, call, chunks=None)
        # Prompts of different chunk counts have embeddings of different lengths: one pipeline call per count,
        # so no prompt is padded because of its neighbours (its image stays independent of the batch).
        negative = self.settings.negative_prompt
        negative_chunks = self.token_info(negative).chunks if negative else 1
        groups: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(max(self.token_info(request.prompt).chunks, negative_chunks), []).append(index)
        outcomes: list[ImageOutcome | None] = [None] * len(requests)
        for chunks, indices in groups.items():
            for index, outcome in zip(indices, self._run_group([requests[i] for i in indices], call, chunks)):
                outcomes[index] = outcome
        return outcomes

    def _run_group(self, requests: list[ImageRequest], call: "_Call", chunks: int | None) -> list[ImageOutcome]:
        import torch

        settings = self.settings
        prompts = [r.prompt for r in requests]
        # One CPU generator per image: its noise depends only on its own seed, never on the batch it is in,
        # and is the same on every device.
        generators = [torch.Generator("cpu").manual_seed(r.seed) for r in requests]

        def on_step_end(pipe, step, timestep, callback_kwargs):
            if call.should_stop():
                raise StopRequested()
            return callback_kwargs

        def text_inputs(pipe) -> dict:
            if chunks is None:  # --truncate-prompts: the stock encoder, which keeps the first 75 tokens
                negative = [settings.negative_prompt] * len(prompts) if settings.negative_prompt else None
                return {"prompt": prompts, "negative_prompt": negative}
            return prompt_embeddings(pipe, prompts, settings.negative_prompt, chunks, pipe._execution_device,
                                     pipe.unet.dtype)

        common = dict(
            guidance_scale=settings.guidance_scale,
            num_inference_steps=call.steps,
            generator=generators,
            output_type="latent",
            callback_on_step_end=on_step_end,
        )
        size = dict(width=settings.width, height=settings.height)
        if self.refiner is None:
            latents = self.base(**size, **text_inputs(self.base), **common).images
        else:
            switch = settings.refiner_switch
            latents = self.base(**size, denoising_end=switch, **text_inputs(self.base), **common).images
            latents = self.refiner(image=latents, denoising_start=switch, **text_inputs(self.refiner), **common).images
        return self._decode_checked(latents, call.keep_float)

    def _decode_checked(self, latents, keep_float: bool) -> list[ImageOutcome]:
        """Decode the batch in one VAE call; an image that comes out NaN or all black is decoded again alone in
        float32 before it counts as failed."""
        memory = dict(offload=self.offload, vae_tiling=self.vae_tiling)
        images, problems = self.decode(latents, self.decode_dtype_name)
        outcomes = []
        for index, (image, problem) in enumerate(zip(images, problems)):
            decode_dtype, notes = self.decode_dtype_name, []
            if problem is not None and decode_dtype != "float32":
                log.warning("%s after a %s VAE decode: decoding again in float32", problem, decode_dtype)
                notes.append(f"{problem} in {decode_dtype}; decoded again in float32")
                decode_dtype = "float32"
                (image,), (problem,) = self.decode(latents[index : index + 1], decode_dtype)
            if problem is not None:
                outcomes.append(ImageOutcome(error=problem, error_type="BadDecode", notes=notes, **memory))
                continue
            # The same float → uint8 rounding as diffusers' numpy_to_pil.
            pixels = (image * 255).round().astype("uint8")
            outcomes.append(ImageOutcome(pixels=pixels, notes=notes, float_pixels=image if keep_float else None,
                                         decode_dtype=decode_dtype, **memory))
        return outcomes

    def decode(self, latents, dtype_name: str) -> tuple[list, list]:
        """Latents (a batch) → per image, [0, 1] float pixels in `dtype_name` or None, and the reason there are
        none (NaN, all black) or None. One VAE call for the batch; the VAE lives in the decode dtype (converted once
        at load), so only the rare float32 retry converts it, and back."""
        import torch

        vae = self.base.vae
        finite = [not bool(torch.isnan(latents[i]).any()) for i in range(latents.shape[0])]
        images: list = [None] * len(finite)
        problems: list = [None if ok else "NaN latents" for ok in finite]
        if not any(finite):
            return images, problems
        keep = [i for i, ok in enumerate(finite) if ok]
        dtype = torch_dtype(dtype_name)
        original_dtype = vae.dtype
        if dtype != original_dtype:
            vae.to(dtype=dtype)
        try:
            config = vae.config
            batch = latents[keep].to(dtype)
            if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
                mean = torch.tensor(config.latents_mean).view(1, 4, 1, 1).to(latents.device, dtype)
                std = torch.tensor(config.latents_std).view(1, 4, 1, 1).to(latents.device, dtype)
                scaled = batch * std / config.scaling_factor + mean
            else:
                scaled = batch / config.scaling_factor
            decoded = vae.decode(scaled.to(self.base._execution_device), return_dict=False)[0]
        finally:
            if dtype != original_dtype:
                vae.to(dtype=original_dtype)
        for position, index in enumerate(keep):
            one = decoded[position : position + 1]
            if torch.isnan(one).any():
                problems[index] = "NaN in the decoded image"
                continue
            image = self.base.image_processor.postprocess(one.float(), output_type="np")[0]
            if float(image.mean()) < BLACK_IMAGE_MAX:
                problems[index] = "all-black image"
                continue
            images[index] = image
        return images, problems

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
        # Rough activation cost of one image (with its CFG twin) in the SDXL UNet at half precision, scaled by pixel
        # count. The batch is decoded in one VAE call, so the decode grows with it too. Checked once: on an H200 at
        # 768² in float16 a batch of 16 peaked at 21.2 GiB with ~7 GiB of weights, ~0.95 GB per image against the
        # 0.84 GB this guess gives (docs/PERFORMANCE.md, GPU check); the 0.7 of free memory covers the difference.
        per_image = 1.5e9 * (self.settings.width * self.settings.height) / (1024 * 1024)
        return max(1, min(16, int(free * 0.7 // per_image)))


@dataclass(frozen=True)
class _Call:
    """What one `generate` call asked for, passed down instead of stored on the engine."""

    should_stop: Callable[[], bool]
    keep_float: bool
    steps: int
