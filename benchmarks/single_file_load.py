#!/usr/bin/env python3
"""What a single-file checkpoint costs at start-up, measured side by side with the diffusers folder it came from.

    python benchmarks/single_file_load.py --model full-random

Writes the model once as a single file in the original layout (next to the folder, kept), then times, in one
process: hashing the file (first time, then from the cache), and `Engine.load` from the folder (from_pretrained)
and from the file (from_single_file, which converts every tensor's name and layout on load). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, full-random or a diffusers folder of an SDXL base")
    parser.add_argument("--dtype", default="bfloat16", help="the load dtype, as --dtype (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="loads of each kind, alternating (default: %(default)s)")
    args = parser.parse_args()

    from throughput import model_path

    from music2image.engine import Engine, quiet_libraries
    from music2image.settings import GenerationSettings
    from music2image.single_file import checkpoint_sha256, hash_cache_path
    from music2image.single_file_layout import save_single_file

    quiet_libraries()
    folder = Path(model_path(args.model))
    single = folder.with_suffix(".safetensors")  # the tiny model's make-tiny-model already wrote (base.safetensors)
    written = None
    if not single.is_file():
        import torch
        from diffusers import StableDiffusionXLPipeline

        started = time.perf_counter()
        # float16, as the folder stores it (and as SDXL checkpoints are shared): half the memory of float32.
        pipe = StableDiffusionXLPipeline.from_pretrained(folder, use_safetensors=True, dtype=torch.float16)
        save_single_file(pipe, single)
        del pipe
        written = time.perf_counter() - started
        gc.collect()
    size = single.stat().st_size

    cache = hash_cache_path()
    if cache.is_file():  # time the first hash: forget this file's cached entry
        entries = json.loads(cache.read_text())
        entries.pop(str(single.resolve()), None)
        cache.write_text(json.dumps(entries))
    started = time.perf_counter()
    checkpoint_sha256(single)
    hash_first = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint_sha256(single)
    hash_cached = time.perf_counter() - started

    settings = GenerationSettings(model=str(folder), device="cpu", dtype=args.dtype)
    kinds = {"folder": settings, "single_file": settings.replace(model=str(single), model_config=str(folder))}
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    Engine.load(kinds["folder"].validate(), "cpu")  # untimed: the first load also pays imports and warm-ups
    gc.collect()
    for _ in range(args.repeats):
        for kind, kind_settings in kinds.items():
            started = time.perf_counter()
            engine = Engine.load(kind_settings.validate(), "cpu")
            seconds[kind].append(time.perf_counter() - started)
            del engine
            gc.collect()

    best = {kind: min(values) for kind, values in seconds.items()}
    print(f"model {args.model}: single file {size / 1e9:.2f} GB" + (f", written in {written:.1f} s" if written else ""))
    print(f"  sha256 of the file: {hash_first:.2f} s first time ({size / 1e9 / hash_first:.2f} GB/s), "
          f"{hash_cached * 1000:.1f} ms cached")
    for kind, values in seconds.items():
        print(f"  Engine.load from the {kind.replace('_', ' ')}: best {best[kind]:.2f} s of "
              + ", ".join(f"{v:.2f}" for v in values))
    print(f"  single file / folder: {best['single_file'] / best['folder']:.2f}x")
    print(json.dumps({"model": args.model, "dtype": args.dtype, "file_bytes": size,
                      "hash_first_s": round(hash_first, 3), "hash_cached_s": round(hash_cached, 4),
                      "load_folder_s": round(best["folder"], 3), "load_single_file_s": round(best["single_file"], 3),
                      "ratio": round(best["single_file"] / best["folder"], 3)}))


if __name__ == "__main__":
    main()
