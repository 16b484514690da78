"""The pieces of gpu_check.py: building the random SDXL on the device, the two ways of running it, the checks, and
the report (JSON + markdown). See gpu_check.py for what runs in which order and why."""

from __future__ import annotations

import datetime
import json
import math
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLACK_MAX = 1.0 / 255.0  # music2image's engine calls a decode with a lower mean brightness all black
CHECK_IMAGES = 4  # prompts for the batch-against-singles check
COMPILE_MIN_S = 90  # an allowance, not a measurement: under this, starting torch.compile of SDXL is not worth it
# Compiling SDXL's UNet and VAE decoder did not finish in 217 s (nor 240 s) on an H200 on 2026-11-27: a check that
# compiles keeps 40 % of its time for it; better still, `--skip-compile` here and `--compile-only` in a second call.
COMPILE_RESERVE = 0.4
# music2image's defaults cost 0.33-0.38 of a seed-loop image on that H200 (batches of 16); planned at 0.5 for margin.
M2I_COST = 0.5
SEED_LOOP = "seed-style loop"  # the first row's name, when the seed loop runs
GPU_BATCH = 16  # --batch-size auto's cap, which it reached at 768² on the 141 GB H200 (and would on an 80 GB H100)


def _shapes(tiny: bool) -> dict:
    import sdxl_random as full

    if not tiny:
        return dict(unet=full.UNET, refiner_unet=full.REFINER_UNET, vae=full.VAE, clip_l=full.CLIP_L,
                    clip_bigg=full.CLIP_BIGG)
    # music2image.tiny's shapes (diffusers' own fast SDXL test components), as dicts.
    unet = dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), attention_head_dim=(2, 4),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True,
                addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
                norm_num_groups=1)
    text = dict(intermediate_size=37, num_attention_heads=4, num_hidden_layers=5, hidden_act="gelu", projection_dim=32)
    return dict(unet={**unet, "cross_attention_dim": 80, "projection_class_embeddings_input_dim": 6 * 8 + 32},
                refiner_unet={**unet, "cross_attention_dim": 48, "projection_class_embeddings_input_dim": 5 * 8 + 32},
                vae=dict(block_out_channels=(8, 16, 16, 16), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, norm_num_groups=8, sample_size=64),
                clip_l={**text, "hidden_size": 32}, clip_bigg={**text, "hidden_size": 48})


def _sig(value: float) -> float:
    """Four significant digits: the tiny model's TFLOP are 1e-4, the full model's hundreds."""
    return float(f"{value:.4g}")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bf16_matmul_peak_tflops(device: str) -> float:
    """The ceiling, measured here: a square bf16 matmul loop (8192 on a GPU; 1024 on a CPU, only to run the code)."""
    import torch

    n, repeats = (8192, 20) if device.startswith("cuda") else (1024, 5)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return _sig(repeats * 2 * n**3 / (time.perf_counter() - started) / 1e12)


def _halve(module) -> None:
    import torch

    for layer in module.modules():
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            layer.weight.data.mul_(0.5)


def _probe(parts: dict, tokenizer, size: int, device: str) -> dict[str, bool]:
    """Which modules give non-finite float16 outputs (or, for the VAE, a black image) on one step / one decode."""
    import torch

    latent = size // 8
    ids = tokenizer(["a quiet violet sea at dawn"] * 2, padding="max_length", max_length=77,
                    return_tensors="pt").input_ids.to(device)
    dtype = parts["unet"].dtype
    with torch.inference_mode():
        hidden = parts["text_encoder"](ids, output_hidden_states=True).hidden_states[-2]
        second = parts["text_encoder_2"](ids, output_hidden_states=True)
        hidden_2, pooled = second.hidden_states[-2], second.text_embeds
        sample = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
        base = parts["unet"](sample, 500, encoder_hidden_states=torch.cat([hidden, hidden_2], -1),
                             added_cond_kwargs={"text_embeds": pooled,
                                                "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2,
                                                                         device=device, dtype=dtype)}).sample
        refiner = parts["refiner_unet"](sample, 500, encoder_hidden_states=hidden_2,
                                        added_cond_kwargs={"text_embeds": pooled,
                                                           "time_ids": torch.tensor([[size, size, 0, 0, 6.0]] * 2,
                                                                                    device=device, dtype=dtype)}).sample
        vae = parts["vae"]
        image = vae.decode(sample[:1] / vae.config.scaling_factor).sample
    bright = float((image.float() / 2 + 0.5).clamp(0, 1).mean())
    return {"text_encoder": bool(torch.isfinite(hidden).all()),
            "text_encoder_2": bool(torch.isfinite(hidden_2).all() and torch.isfinite(pooled).all()),
            "unet": bool(torch.isfinite(base).all()), "refiner_unet": bool(torch.isfinite(refiner).all()),
            "vae": bool(torch.isfinite(image).all()) and bright > BLACK_MAX}


def _unet_step_flops(unet, size: int, time_ids: int, device: str) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    latent, dtype, config = size // 8, unet.dtype, unet.config
    pooled = config.projection_class_embeddings_input_dim - time_ids * config.addition_time_embed_dim
    with torch.inference_mode(), FlopCounterMode(display=False) as count:
        unet(torch.randn(2, 4, latent, latent, device=device, dtype=dtype), 500,  # 2: the CFG batch
             encoder_hidden_states=torch.randn(2, 77, config.cross_attention_dim, device=device, dtype=dtype),
             added_cond_kwargs={"text_embeds": torch.randn(2, pooled, device=device, dtype=dtype),
                                "time_ids": torch.ones(2, time_ids, device=device, dtype=dtype)})
    return count.get_total_flops()


def build_on_device(folder: Path, device: str, dtype, size: int, steps: int, tiny: bool) -> dict:
    """Random SDXL base + refiner allocated and initialised on `device` in `dtype`, probed, counted, saved."""
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from music2image.tiny import build_tokenizer

    shapes, tokenizer = _shapes(tiny), build_tokenizer()
    common = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    started = time.perf_counter()
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            parts = dict(vae=AutoencoderKL(**shapes["vae"]),
                         text_encoder=CLIPTextModel(CLIPTextConfig(**shapes["clip_l"], **common)),
                         text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**shapes["clip_bigg"], **common)),
                         unet=UNet2DConditionModel(**shapes["unet"]),
                         refiner_unet=UNet2DConditionModel(**shapes["refiner_unet"]))
    finally:
        torch.set_default_dtype(previous)
    for module in parts.values():
        module.eval()
    _sync(device)
    built_s = time.perf_counter() - started
    retries = {name: 0 for name in parts}
    for _attempt in range(4):
        bad = [name for name, fine in _probe(parts, tokenizer, size, device).items() if not fine]
        if not bad:
            break
        for name in bad:
            retries[name] += 1
            _halve(parts[name])
    else:
        raise RuntimeError(f"random weights still give non-finite {dtype} outputs after 3 halvings: {bad}")

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    unet_flops = _unet_step_flops(parts["unet"], size, 6, device)
    refiner_flops = _unet_step_flops(parts["refiner_unet"], size, 5, device)
    with torch.inference_mode(), FlopCounterMode(display=False) as count:
        parts["vae"].decode(torch.randn(1, 4, size // 8, size // 8, device=device, dtype=dtype))
    decode_flops = count.get_total_flops()
    # The base runs the timesteps at or above the refiner switch (0.8), the refiner the rest (diffusers' cut-off).
    scheduler.set_timesteps(steps)
    cutoff = int(round(1000 - 0.8 * 1000))
    base_steps = int((scheduler.timesteps >= cutoff).sum())

    started = time.perf_counter()
    base = StableDiffusionXLPipeline(vae=parts["vae"], text_encoder=parts["text_encoder"],
                                     text_encoder_2=parts["text_encoder_2"], tokenizer=tokenizer, tokenizer_2=tokenizer,
                                     unet=parts["unet"], scheduler=scheduler, add_watermarker=False)
    base.save_pretrained(folder / "base", safe_serialization=True)
    StableDiffusionXLImg2ImgPipeline(vae=parts["vae"], text_encoder=None, text_encoder_2=parts["text_encoder_2"],
                                     tokenizer=None, tokenizer_2=tokenizer, unet=parts["refiner_unet"],
                                     scheduler=scheduler, requires_aesthetics_score=True,
                                     force_zeros_for_empty_prompt=False,
                                     add_watermarker=False).save_pretrained(folder / "refiner", safe_serialization=True)
    saved_s = time.perf_counter() - started
    result = dict(
        build_s=round(built_s, 2), save_s=round(saved_s, 2), init_retries=retries,
        folder_gb=round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9, 2),
        unet_parameters_b=round(sum(p.numel() for p in parts["unet"].parameters()) / 1e9, 3),
        refiner_unet_parameters_b=round(sum(p.numel() for p in parts["refiner_unet"].parameters()) / 1e9, 3),
        unet_step_tflop=_sig(unet_flops / 1e12), refiner_step_tflop=_sig(refiner_flops / 1e12),
        vae_decode_tflop=_sig(decode_flops / 1e12), base_steps_with_refiner=base_steps,
        tflop_per_image=_sig((steps * unet_flops + decode_flops) / 1e12),
        tflop_per_image_refiner=_sig((base_steps * unet_flops + (steps - base_steps) * refiner_flops + decode_flops) / 1e12))
    del parts, base
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def count_on_meta(size: int, steps: int) -> dict:
    """The full-size counts without weights or a GPU: the modules on PyTorch's meta device (shapes only)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    shapes = _shapes(tiny=False)
    with torch.device("meta"):
        unet, refiner = (UNet2DConditionModel(**shapes[name]).half() for name in ("unet", "refiner_unet"))
        vae = AutoencoderKL(**shapes["vae"]).half()
    unet_flops, refiner_flops = _unet_step_flops(unet, size, 6, "meta"), _unet_step_flops(refiner, size, 5, "meta")
    with torch.inference_mode(), FlopCounterMode(display=False) as count:
        vae.decode(torch.randn(1, 4, size // 8, size // 8, device="meta", dtype=torch.float16))
    return dict(unet_step_tflop=_sig(unet_flops / 1e12), refiner_step_tflop=_sig(refiner_flops / 1e12),
                vae_decode_tflop=_sig(count.get_total_flops() / 1e12),
                tflop_per_image=_sig((steps * unet_flops + count.get_total_flops()) / 1e12))


def visual_prompts() -> list[str]:
    source = json.loads((ROOT / "examples" / "visual_prompts.json").read_text())
    return [p["visual_prompt"] for s in source["samples"] for p in s["prompts"]]


class SeedLoop:
    """The original tool's way: one pipeline call per prompt, the image saved before the next call starts."""

    def __init__(self, model: str, device: str, dtype, size: int, steps: int, folder: Path):
        from diffusers import StableDiffusionXLPipeline

        started = time.perf_counter()
        self.pipe = StableDiffusionXLPipeline.from_pretrained(model, dtype=dtype, use_safetensors=True,
                                                              add_watermarker=False).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.load_s = time.perf_counter() - started
        self.device, self.size, self.steps, self.folder = device, size, steps, folder
        folder.mkdir(parents=True)

    def _image(self, prompt: str, steps: int):
        return self.pipe(prompt=prompt, height=self.size, width=self.size, num_inference_steps=steps).images[0]

    def calibrate(self, prompt: str) -> float:
        """Seconds for one full image, after a 1-step warm-up call (neither is part of the timed loop)."""
        self._image(prompt, 1)
        _sync(self.device)
        started = time.perf_counter()
        self._image(prompt, self.steps).save(self.folder / "calibration.png")
        return time.perf_counter() - started

    def run(self, prompts: list[str]) -> dict:
        import torch

        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        black, calls = 0, 0.0
        started = time.perf_counter()
        for index, prompt in enumerate(prompts):
            call_started = time.perf_counter()
            image = self._image(prompt, self.steps)  # returns a PIL image: the GPU work is done
            calls += time.perf_counter() - call_started
            black += float(np.asarray(image).mean()) / 255 < BLACK_MAX
            image.save(self.folder / f"seed_{index:04d}.png")
        seconds = time.perf_counter() - started
        return dict(images=len(prompts), seconds=seconds, batch_size=1, dtype=str(self.pipe.unet.dtype).split(".")[-1],
                    engine_s_per_image_full_batches=calls / max(len(prompts), 1),
                    failed=black, retries=0, load_s=round(self.load_s, 2),
                    peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None)

    def close(self) -> None:
        import gc

        import torch

        del self.pipe
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def plan_counts(left_s: float, image_s: float, load_s: float, max_images: int, batch: int = 1,
                compile_reserve: float = COMPILE_RESERVE) -> dict:
    """How many images each phase makes, from the time left and one measured seed-loop image. Cost, in seed-loop
    images: the seed loop n; music2image n twice at M2I_COST each; the refiner n/2 at 1.2 × M2I_COST; checks
    (batch + singles + offload + tiling) ~14; plus ~7 loads. `compile_reserve` of the time left is kept for --compile,
    which runs last. The count is rounded down to whole batches of `batch` (what --batch-size auto picks), so that
    no timed run ends on a part-filled batch: on 2026-11-27 21 images ran as 16 + 5."""
    spare = left_s * (1 - compile_reserve) - 7 * load_s - 14 * image_s
    per_image = 1 + 2 * M2I_COST + 0.5 * 1.2 * M2I_COST
    images = max(2, min(max_images, math.floor(spare / (per_image * image_s))))
    if images >= batch:
        images -= images % batch
    refiner_images = max(1, images // 2)
    if refiner_images >= batch:
        refiner_images -= refiner_images % batch
    return dict(images=images, refiner_images=refiner_images, check_images=min(CHECK_IMAGES, images),
                first_image_s=round(image_s, 3), load_s=round(load_s, 2), left_s=round(left_s, 1),
                batch=batch, compile_min_s=COMPILE_MIN_S)


def full_batches(entries: list[dict], batch: int) -> list[dict]:
    """The log entries of the images made in full batches, `batch` at a time in the order they ran: prompts-file
    order, which is (sample, prompt) order for gpu_check's document (its samples are numbered upward in file order)."""
    ordered = sorted(entries, key=lambda e: (e["sample_idx"], e["prompt_id"], e.get("image_index", 0)))
    return ordered[: len(ordered) - len(ordered) % batch]


def music2image_run(prompts: list[str], folder: Path, **settings) -> dict:
    """music2image through its public API, one prompt per sample; what its log says of the run."""
    from music2image import BatchImageGenerator

    document = {"samples": [{"sample_idx": i, "prompts": [{"prompt_id": 0, "mode": "convergent", "temperature": 0.4,
                                                          "visual_prompt": p}]} for i, p in enumerate(prompts)]}
    started = time.perf_counter()
    result = BatchImageGenerator(document, folder, progress=False, **settings).run()
    log = json.loads(Path(result.log_path).read_text())
    meta = log["metadata"]
    peak = meta.get("peak_gpu_memory_bytes")
    # Each entry's generation_time is its batch's engine seconds over the batch's images (no PNG writing).
    full = full_batches(log["generated_images"], meta["batch_size"])
    engine = sum(e["generation_time"] for e in full) / len(full) if full else None
    return dict(images=meta["generated_this_run"], seconds=meta["elapsed_seconds"], batch_size=meta["batch_size"],
                engine_s_per_image_full_batches=engine,
                dtype=meta["dtype"], failed=result.failed, retries=sum(1 for image in result.images if image.notes),
                load_s=round(time.perf_counter() - started - meta["elapsed_seconds"] - (meta["compile_seconds"] or 0), 2),
                compile_s=meta["compile_seconds"], peak_gpu_gib=peak / 2**30 if peak else None)


def compile_phase(config: dict) -> dict:
    prompts, folder = config.pop("prompts"), Path(config.pop("folder"))
    return music2image_run(prompts, folder, compile=True, **config)


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.png"))}


def same_bytes(first: Path, second: Path) -> dict:
    a, b = _pngs(first), _pngs(second)
    differ = [name for name in a if name not in b or a[name].read_bytes() != b[name].read_bytes()]
    return {"ok": bool(a) and a.keys() == b.keys() and not differ,
            "detail": f"{len(a)} PNGs against {len(b)}, {len(differ)} differ"}


# A batched image against the same image made alone, in 8-bit values, as the README states it: float32 sums
# reordered stay within 1e-5 (at most one after rounding); for float16/bfloat16 the README reports what was seen, 3
# (the tiny model on a CPU, and the full-size model on an H200 in float16, 2026-11-27), and the check holds that
# figure: a larger difference is news for the README, not necessarily a defect.
BATCH_TOLERANCE = {"float32": 1, "float16": 3, "bfloat16": 3}


def within_tolerance(batched: Path, singles: Path, count: int, tolerance: int) -> dict:
    from PIL import Image

    a, b = _pngs(batched), _pngs(singles)
    worst, differing, values = 0, 0, 0
    for name, path in b.items():
        difference = np.abs(np.asarray(Image.open(path), dtype=int) - np.asarray(Image.open(a[name]), dtype=int))
        worst, differing, values = max(worst, int(difference.max())), differing + int((difference > 0).sum()), values + difference.size
    return {"ok": len(b) == count and worst <= tolerance,
            "detail": f"{len(b)} images, max 8-bit difference {worst}, {differing / max(values, 1):.3%} of values differ"}


def ran(result: dict) -> dict:
    return {"ok": result["images"] > 0 and result["failed"] == 0,
            "detail": f"{result['images']} images, {result['failed']} failed, {result['seconds']:.1f} s"}


class Report:
    """The figures as they come in: gpu_check.json (everything) and gpu_check.md (the table), rewritten after each
    phase so that a run stopped from outside still leaves what it measured."""

    def __init__(self, out: Path, budget_s: float):
        self.out = out
        self.data: dict = {"budget_s": budget_s, "phases": [], "checks": []}

    def env(self, device: str, size: int, steps: int, tiny: bool) -> None:
        import diffusers
        import torch
        import transformers

        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
        self.data.update(date=datetime.date.today().isoformat(), device=device, gpu_name=name, size=size, steps=steps,
                         model="tiny random SDXL" if tiny else "full-size random SDXL base + refiner",
                         versions={"torch": torch.__version__, "diffusers": diffusers.__version__,
                                   "transformers": transformers.__version__})

    def phase(self, name: str, result: dict, tflop_per_image: float) -> None:
        s_per_image = result["seconds"] / max(result["images"], 1)
        first = self.data["phases"][0] if self.data["phases"] else {"name": name, "s_per_image": s_per_image}
        achieved = tflop_per_image / s_per_image
        # The first row is the seed loop, except under --compile-only (there: the defaults, uncompiled).
        ratio = {"ratio_to_seed_loop" if first["name"] == SEED_LOOP else "ratio_to_first_row":
                 _sig(first["s_per_image"] / s_per_image)}
        self.data["phases"].append({
            "name": name, **{k: (_sig(v) if isinstance(v, float) else v) for k, v in result.items()},
            "s_per_image": _sig(s_per_image), "images_per_s": _sig(1 / s_per_image),
            **ratio, "tflop_per_image": _sig(tflop_per_image),
            "achieved_tflops": _sig(achieved), "percent_of_bf16_peak": _sig(100 * achieved / self.data["bf16_peak_tflops"]),
            # A timing that includes an NaN/black retry, or an image that failed, measures something else.
            "void": bool(result.get("retries") or result.get("failed")),
        })
        engine = result.get("engine_s_per_image_full_batches")
        if engine:
            self.data["phases"][-1]["percent_of_bf16_peak_full_batches"] = _sig(
                100 * tflop_per_image / engine / self.data["bf16_peak_tflops"])

    def skip(self, name: str, why: str) -> None:
        self.data["phases"].append({"name": name, "skipped": why})

    def check(self, name: str, result: dict) -> None:
        self.data["checks"].append({"name": name, **result})

    def save(self, elapsed_s: float) -> None:
        self.data["elapsed_s"] = round(elapsed_s, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2) + "\n")
        (self.out / "gpu_check.md").write_text(self.markdown())

    def markdown(self) -> str:
        d = self.data
        lines = [f"# gpu_check — {d.get('date')}, {d.get('gpu_name')} ({d.get('device')})", "",
                 f"{d.get('model')}, {d.get('size')}x{d.get('size')}, {d.get('steps')} steps; versions "
                 f"{d.get('versions')}; bf16 matmul peak measured {d.get('bf16_peak_tflops')} TFLOP/s; "
                 f"budget {d['budget_s']} s, took {d.get('elapsed_s')} s.", ""]
        if "build" in d:
            lines += [f"Build on the device: {json.dumps(d['build'])}", ""]
        if "plan" in d:
            lines += [f"Plan: {json.dumps(d['plan'])}", ""]
        lines += ["| run | images | s/image | images/s | ratio to first row | TFLOP/image | TFLOP/s | % bf16 peak "
                  "| engine s/image, full batches | % bf16 peak, full batches | peak GPU GiB | batch | dtype | compile s "
                  "| retries / failed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in d["phases"]:
            if "skipped" in p:
                lines.append(f"| {p['name']} | {p['skipped']} |" + " |" * 13)
                continue
            gib = f"{p['peak_gpu_gib']:.2f}" if p.get("peak_gpu_gib") else "n/a"
            lines.append(f"| {p['name']} | {p['images']} | {p['s_per_image']} | {p['images_per_s']} | "
                         f"{p.get('ratio_to_seed_loop', p.get('ratio_to_first_row'))} | {p['tflop_per_image']} | {p['achieved_tflops']} | "
                         f"{p['percent_of_bf16_peak']} | {p.get('engine_s_per_image_full_batches') or ''} | "
                         f"{p.get('percent_of_bf16_peak_full_batches') or ''} | {gib} | {p['batch_size']} | "
                         f"{p['dtype']} | {p.get('compile_s') or ''} | "
                         f"{p['retries']} / {p['failed']}{' (void)' if p['void'] else ''} |")
        lines += ["", "| check | result | detail |", "|---|---|---|"]
        for c in d["checks"]:
            verdict = {True: "pass", False: "FAIL", None: "skipped"}[c["ok"]]
            lines.append(f"| {c['name']} | {verdict} | {c['detail']} |")
        return "\n".join(lines) + "\n"
