"""One UNet step (the CFG batch of 2) in the layouts and fusions a fast SDXL stack uses, side by side on one model.

    python benchmarks/unet_variants.py --model full-random --size 256 --dtype bfloat16
    python benchmarks/unet_variants.py --model tiny --size 64 --compile

Variants: plain; channels_last (memory format of the UNet's weights and input); fused QKV projections
(diffusers' `fuse_qkv_projections`: one matmul for query, key and value); both; with --compile also
torch.compile (default mode) of the plain UNet, its compile time printed apart. Each is timed as the best of
--repeats steps after one warm-up step, and compared with the plain output (max |difference|), since a variant
that made other pixels would not be a free speed-up. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, full-random or a diffusers folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow to compile on a CPU)")
    args = parser.parse_args()

    import torch
    from diffusers import UNet2DConditionModel

    from throughput import model_path

    dtype = getattr(torch, args.dtype)
    unet = UNet2DConditionModel.from_pretrained(model_path(args.model), subfolder="unet", dtype=dtype).to(args.device)
    unet.eval()
    config, latent = unet.config, args.size // 8
    generator = torch.Generator("cpu").manual_seed(0)
    pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    inputs = dict(
        sample=torch.randn(2, 4, latent, latent, generator=generator).to(args.device, dtype),
        timestep=500,
        encoder_hidden_states=torch.randn(2, 77, config.cross_attention_dim, generator=generator).to(args.device, dtype),
        added_cond_kwargs={"text_embeds": torch.randn(2, pooled, generator=generator).to(args.device, dtype),
                           "time_ids": torch.tensor([[args.size, args.size, 0, 0, args.size, args.size]] * 2,
                                                    dtype=dtype, device=args.device)},
    )

    def step(channels_last: bool):
        sample = inputs["sample"].to(memory_format=torch.channels_last) if channels_last else inputs["sample"]
        return unet(**{**inputs, "sample": sample}).sample

    def set_variant(channels_last: bool, fused: bool) -> None:
        # One model switched in place (four full-size copies would not fit in RAM): fusing keeps the separate
        # projections, so unfusing restores the plain model exactly.
        if fused and not getattr(unet, "_m2i_fused", False):
            unet.fuse_qkv_projections()
        elif not fused and getattr(unet, "_m2i_fused", False):
            unet.unfuse_qkv_projections()
        unet._m2i_fused = fused
        unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    print(f"model {args.model}, {args.size}x{args.size}, {args.dtype}, {args.device}, {torch.get_num_threads()} "
          f"threads, one UNet step on a CFG batch of 2, best of {args.repeats} rounds (variants interleaved)")
    variants = {"plain": (False, False), "channels_last": (True, False), "fused_qkv": (False, True),
                "channels_last+fused_qkv": (True, True)}
    best = {name: float("inf") for name in variants}
    outputs = {}
    with torch.inference_mode():
        # Interleaved rounds, each variant warmed up after its switch: on a shared machine the load drifts, and
        # timing one variant after another would put the drift into the comparison.
        for _round in range(args.repeats):
            for name, (channels_last, fused) in variants.items():
                set_variant(channels_last, fused)
                outputs[name] = step(channels_last).float()
                started = time.perf_counter()
                step(channels_last)
                best[name] = min(best[name], time.perf_counter() - started)
    set_variant(False, False)
    results = {name: {"seconds": best[name], "speedup": best["plain"] / best[name],
                      "max_abs_diff": float((outputs[name] - outputs["plain"]).abs().max())} for name in variants}
    if args.compile:
        started = time.perf_counter()
        compiled = torch.compile(unet, dynamic=False)
        with torch.inference_mode():
            compiled(**inputs)
            compile_s = time.perf_counter() - started
            seconds = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                output = compiled(**inputs).sample.float()
                seconds = min(seconds, time.perf_counter() - started)
                plain_started = time.perf_counter()
                unet(**inputs)  # the plain step again, beside it, for the same load
                results["plain"]["seconds"] = min(results["plain"]["seconds"], time.perf_counter() - plain_started)
        results["compile"] = {"seconds": seconds, "speedup": results["plain"]["seconds"] / seconds,
                              "compile_s": compile_s, "max_abs_diff": float((output - outputs["plain"]).abs().max())}
    for name, r in results.items():
        extra = f", compile {r['compile_s']:.1f} s" if "compile_s" in r else ""
        print(f"  {name:24s} {r['seconds']:8.3f} s  {r['speedup']:5.2f}x  max |diff| {r['max_abs_diff']:.3g}{extra}")
    print(json.dumps({"model": args.model, "size": args.size, "dtype": args.dtype, "device": args.device,
                      **{k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in results.items()}}))


if __name__ == "__main__":
    main()
