#!/usr/bin/env python
"""How fast `music2image evaluate` measures images: images/s on this machine.

    python benchmarks/evaluate_speed.py --model full-random --images 64 --size 768

`--model full-random` is CLIP ViT-L/14's architecture (openai/clip-vit-large-patch14: vision 1024 wide, 24 layers,
14-pixel patches at 224 px; text 768 wide, 12 layers; 768-wide projection) with random weights, built in code and
saved once into ~/.cache/music2image (1.7 GB); speed does not depend on weight values. `tiny` is the tests' CLIP.

It writes a folder of IMAGES synthetic SIZE² PNGs (20 samples × 5 prompts, as `generate` lays them out, with a
log and a prompts file), then runs `evaluate()` on it twice: cold (every embedding computed) and warm (every one
from the cache). Printed: model load, the cold run's images/s (reading, hashing, colour, CLIP embeddings, statistics
and report; model load excluded), the warm run's seconds, and the parts measured alone: CLIP image embedding (also
in CPU seconds per image, and the load average: on a shared machine wall time depends on the other work) and
CIELAB colour measures, in images/s. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmark_host import cpu_name  # benchmarks/benchmark_host.py, beside this script

import numpy as np

VIT_L_14 = {
    "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "max_position_embeddings": 77, "vocab_size": 49408},
    "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                      "num_attention_heads": 16, "image_size": 224, "patch_size": 14},
    "projection_dim": 768,
}


def full_random_clip() -> Path:
    """CLIP ViT-L/14's architecture with random weights, saved once (atomically) into the cache."""
    from music2image.evaluation.embeddings import _quiet_transformers

    _quiet_transformers()  # before naming CLIPImageProcessor: without torchvision, transformers warns about it
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from music2image.tiny import build_tokenizer, cache_dir

    target = cache_dir() / "clip-vit-l14-random"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clip-", dir=target.parent))
    model = CLIPModel(CLIPConfig(**VIT_L_14))
    model.save_pretrained(staging, safe_serialization=True)
    # openai/clip-vit-large-patch14's preprocessing: short side to 224, centre crop 224, CLIP's mean and std.
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 224},
                                                                 crop_size={"height": 224, "width": 224}),
                              tokenizer=build_tokenizer())
    processor.save_pretrained(staging)
    os.replace(staging, target)
    return target


def write_folder(root: Path, images: int, size: int) -> Path:
    """IMAGES smooth random images in samples of 5 prompts (3 convergent, 2 divergent), with log and prompts."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = root / "out"
    entries, samples = [], {}
    for number in range(images):
        sample_idx, prompt_id = divmod(number, 5)
        mode = "convergent" if prompt_id < 3 else "divergent"
        coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
        path = f"sample_{sample_idx:03d}/sample_{sample_idx:03d}_prompt_{prompt_id:02d}.png"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(folder / path)
        entries.append({"sample_idx": sample_idx, "prompt_id": prompt_id, "mode": mode, "status": "success",
                        "temperature": 0.4 if mode == "convergent" else 0.8, "seed": number, "image_path": path,
                        "visual_prompt": f"a {['calm', 'stormy', 'golden'][number % 3]} sea at dusk, painting {number}"})
        samples[sample_idx] = {"sample_idx": sample_idx, "prompts": [],
                               "musical_features": {"tonality": ["major", "minor"][sample_idx % 2],
                                                    "tempo": 60.0 + 5 * sample_idx},
                               "emotion": {"valence": float(rng.uniform(-1, 1)), "arousal": float(rng.uniform(-1, 1))}}
    (folder / "prompts.json").write_text(json.dumps({"samples": list(samples.values())}))
    (folder / "image_generation_log.json").write_text(json.dumps({"metadata": {"prompts_file": "prompts.json"},
                                                                  "generated_images": entries}))
    return folder




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, full-random, or a local CLIP folder")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (music2image's default is 768)")
    parser.add_argument("--batch-size", type=int, default=None, help="as evaluate's (default: 8 on CPU, 64 on GPU)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from music2image import evaluate
    from music2image.engine import available_device
    from music2image.evaluation.colour import colour_measures
    from music2image.evaluation.embeddings import ClipEmbedder, resolve_clip_model

    clip = str(full_random_clip()) if args.model == "full-random" else args.model
    device = available_device(args.device)
    batch_size = args.batch_size or (64 if device.startswith("cuda") else 8)
    with tempfile.TemporaryDirectory() as root:
        folder = write_folder(Path(root), args.images, args.size)

        # evaluate() times its own steps; everything after the model load counts.
        cold = evaluate(folder, clip, batch_size=batch_size, device=device, progress=False)
        load_s = cold.seconds["load"]
        cold_s = sum(cold.seconds.values()) - load_s
        warm = evaluate(folder, clip, batch_size=batch_size, device=device, progress=False)
        warm_s = sum(warm.seconds.values()) - warm.seconds["load"]
        assert cold.embedded_now == args.images and warm.embedded_now == 0
        embedder = ClipEmbedder(resolve_clip_model(clip), device)

        from PIL import Image

        pictures = [Image.open(folder / image.entry.image_path).convert("RGB") for image in cold.images]
        start, cpu_start = time.perf_counter(), time.process_time()
        for first in range(0, len(pictures), batch_size):
            embedder.image_embeddings(pictures[first:first + batch_size])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        embed_s, embed_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        for picture in pictures:
            colour_measures(np.asarray(picture))
        colour_s = time.perf_counter() - start

    record = {
        "model": args.model, "device": device, "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "images": args.images, "size": args.size, "batch_size": batch_size, "load_s": round(load_s, 2),
        "evaluate_cold_img_s": round(args.images / cold_s, 3), "evaluate_warm_s": round(warm_s, 2),
        "cold_steps_s": {name: round(value, 2) for name, value in cold.seconds.items()},
        "clip_embedding_img_s": round(args.images / embed_s, 3), "colour_img_s": round(args.images / colour_s, 3),
        # On a shared machine wall time depends on the others: the CPU seconds this process got, and the load.
        "clip_embedding_cpu_s_per_img": round(embed_cpu_s / args.images, 5),
        "load_average": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }
    print(f"model {args.model} on {device} ({record['cpu']}, {record['threads']} threads), {args.images} images "
          f"of {args.size}x{args.size}, batch {batch_size}")
    print(f"  {load_s:8.2f} s     CLIP model load")
    print(f"  {record['evaluate_cold_img_s']:8.3f} img/s evaluate, cold cache (everything but the model load: "
          + ", ".join(f"{name} {value:.2f} s" for name, value in cold.seconds.items() if name != "load") + ")")
    print(f"  {warm_s:8.2f} s     evaluate again, every embedding from the cache")
    print(f"  {record['clip_embedding_img_s']:8.3f} img/s CLIP image embedding alone "
          f"({record['clip_embedding_cpu_s_per_img']:.2f} CPU s per image; load average "
          f"{record['load_average'][0]} on {record['cpus']} CPUs)")
    print(f"  {record['colour_img_s']:8.3f} img/s CIELAB colour measures alone")
    print(json.dumps(record))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
