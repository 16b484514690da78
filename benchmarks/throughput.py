"""Throughput: the seed-style loop against music2image, side by side in one process, same model/prompts/settings.

(a) seed-style: one StableDiffusionXLPipeline call per prompt, synchronous `image.save`, the pipeline's defaults
    (float16 on CUDA, float32 elsewhere), the way the original tool works;
(b) music2image: BatchImageGenerator with its defaults for the device (or the --batch-size / --dtype given).

    python benchmarks/throughput.py --model tiny --size 64 --steps 2 --prompts 8
    python benchmarks/throughput.py --model full-random --size 256 --steps 4 --prompts 4
    accelerate launch --multi_gpu --num_processes 2 benchmarks/throughput.py --model tiny --prompts 16

Prints images/s of both (model loading excluded, one 1-step warm-up call before (a)), their ratio, peak RAM and
GPU memory, on a GPU the achieved TFLOP/s from counted FLOPs against a measured bf16 matmul peak, and ends with
one JSON line. Under `accelerate launch`, (b) is the aggregate images/s of all processes; (a) stays one process.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def model_path(name: str) -> str:
    if name == "tiny":
        from music2image.tiny import tiny_model_path

        return str(tiny_model_path("base"))
    if name == "full-random":
        from sdxl_random import full_random_path

        return str(full_random_path())
    return name


def peak_ram_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def counted_tflop_per_image(pipe, size: int, steps: int, device: str) -> float:
    """FLOPs of one image: `steps` UNet forwards on a CFG batch of 2, plus one VAE decode (FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    latent = size // 8
    unet, vae = pipe.unet, pipe.vae
    dtype = unet.dtype
    sample = torch.zeros(2, 4, latent, latent, device=device, dtype=dtype)
    text = torch.zeros(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    added = {"text_embeds": torch.zeros(2, 1280, device=device, dtype=dtype),
             "time_ids": torch.zeros(2, 6, device=device, dtype=dtype)}
    with torch.inference_mode(), FlopCounterMode(display=False) as unet_count:
        unet(sample, 10, encoder_hidden_states=text, added_cond_kwargs=added)
    with torch.inference_mode(), FlopCounterMode(display=False) as vae_count:
        vae.decode(sample[:1].to(vae.dtype))
    return (steps * unet_count.get_total_flops() + vae_count.get_total_flops()) / 1e12


def bf16_matmul_peak_tflops(device: str) -> float:
    import torch

    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12


def seed_style(path: str, prompts: list[str], size: int, steps: int, device: str, out: Path) -> dict:
    import torch
    from diffusers import StableDiffusionXLPipeline

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    started = time.perf_counter()
    pipe = StableDiffusionXLPipeline.from_pretrained(path, dtype=dtype, use_safetensors=True, add_watermarker=False)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - started
    pipe(prompts[0], height=size, width=size, num_inference_steps=1)  # warm-up, not timed
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for index, prompt in enumerate(prompts):
        image = pipe(prompt=prompt, height=size, width=size, num_inference_steps=steps).images[0]
        image.save(out / f"seed_{index:04d}.png")
    seconds = time.perf_counter() - started
    result = {"load_s": load, "seconds": seconds, "img_s": len(prompts) / seconds,
              "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
              "flops": counted_tflop_per_image(pipe, size, steps, device) if device.startswith("cuda") else None}
    del pipe
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def music2image_run(path: str, prompts: list[str], args, device: str, out: Path) -> dict:
    import torch

    from music2image import BatchImageGenerator

    document = {"samples": [{"sample_idx": i, "prompts": [{"prompt_id": 0, "mode": "convergent", "temperature": 0.4,
                                                          "visual_prompt": p}]} for i, p in enumerate(prompts)]}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = BatchImageGenerator(document, out, model=path, width=args.size, height=args.size, steps=args.steps,
                                 device=device, batch_size=args.batch_size, dtype=args.dtype, progress=False).run()
    total = time.perf_counter() - started
    if result.log_path is None:  # another process of a launch: the main process reports for all
        return {}
    meta = json.loads(Path(result.log_path).read_text())["metadata"]
    return {"seconds": meta["elapsed_seconds"], "img_s": meta["images_per_second"], "load_s": total - meta["elapsed_seconds"],
            "batch_size": meta["batch_size"], "dtype": meta["dtype"], "failed": result.failed,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, full-random or a diffusers folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8, help="how many prompts (from examples/visual_prompts.json)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", default="auto", type=lambda v: v if v == "auto" else int(v))
    parser.add_argument("--dtype", default="auto", help="music2image's --dtype (the seed-style loop keeps its own)")
    args = parser.parse_args()

    from music2image.distributed import Launch
    from music2image.engine import quiet_libraries, available_device

    quiet_libraries()
    launch = Launch()
    path = launch.decide(lambda: model_path(args.model))  # built once, by the main process, if not cached
    source = json.loads((ROOT / "examples" / "visual_prompts.json").read_text())
    all_prompts = [p["visual_prompt"] for s in source["samples"] for p in s["prompts"]]
    prompts = (all_prompts * (1 + args.prompts // len(all_prompts)))[: args.prompts]

    # Under `accelerate launch`, (a) runs on the main process's device alone (the one-GPU baseline) while the others
    # wait; (b) runs on every process into one shared folder, and its images/s is the launch's aggregate.
    device = available_device(launch.device(args.device))
    if launch.is_main:
        print(f"model {args.model} ({path}), device {device}, {args.size}x{args.size}, {args.steps} steps, "
              f"{len(prompts)} prompts, {launch.world} process(es)")
    tmp = launch.decide(lambda: tempfile.mkdtemp(prefix="m2i-bench-"))
    try:
        a = None
        if launch.is_main:
            (Path(tmp) / "a").mkdir()
            a = seed_style(path, prompts, args.size, args.steps, device, Path(tmp) / "a")
            print(f"(a) seed-style loop: {a['img_s']:.4f} img/s ({a['seconds']:.1f} s, load {a['load_s']:.1f} s), "
                  f"peak RAM {peak_ram_gib():.2f} GiB"
                  + (f", peak GPU {a['peak_gpu_gib']:.2f} GiB" if a["peak_gpu_gib"] else ""))
        launch.wait_for_everyone()
        b = music2image_run(path, prompts, args, device, Path(tmp) / "b")
        if not launch.is_main:
            return
        print(f"(b) music2image:     {b['img_s']:.4f} img/s ({b['seconds']:.1f} s, load {b['load_s']:.1f} s, "
              f"batch {b['batch_size']}, {b['dtype']}, {launch.world} process(es), {b['failed']} failed), "
              f"peak RAM {peak_ram_gib():.2f} GiB"
              + (f", peak GPU {b['peak_gpu_gib']:.2f} GiB" if b["peak_gpu_gib"] else ""))
    finally:
        launch.wait_for_everyone()
        if launch.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
    ratio = b["img_s"] / a["img_s"]
    print(f"ratio b/a: {ratio:.2f}" + (f" ({launch.world} processes against one)" if launch.distributed else ""))
    record = {"model": args.model, "device": device, "size": args.size, "steps": args.steps, "images": len(prompts),
              "seed_style_img_s": round(a["img_s"], 5), "music2image_img_s": round(b["img_s"], 5),
              "ratio": round(ratio, 3), "processes": launch.world, "music2image_batch_size": b["batch_size"],
              "music2image_dtype": b["dtype"]}
    if a["flops"]:
        peak = bf16_matmul_peak_tflops(device)
        achieved = a["flops"] * b["img_s"] / launch.world  # per device
        print(f"counted {a['flops']:.1f} TFLOP/image; music2image {achieved:.0f} TFLOP/s = "
              f"{100 * achieved / peak:.1f}% of measured bf16 peak {peak:.0f} TFLOP/s")
        record.update(tflop_per_image=round(a["flops"], 2), achieved_tflops=round(achieved, 1),
                      bf16_peak_tflops=round(peak, 1))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
