"""Report scale: `grid` and `gallery` on a large output folder, timed, with the size of the largest page and image.

Builds a synthetic output folder (no model: SAMPLES x PER_SAMPLE small PNGs written by music2image's own
`encode_image` with an A1111 `parameters` text and a recipe, a log and a summary in the formats `generate` writes),
then runs `make_grids` and `make_gallery` (twice: the second run reuses the cached thumbnails) and reports:

    python benchmarks/report_scale.py                      # 1,000 samples x 5 images of 64x64
    python benchmarks/report_scale.py --samples 100 --keep /tmp/report-folder

The goal (issue 12, item 14) is that no page and no image grows with the run: the largest page and the largest
image stay the same from 100 to 1,000 samples. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmark_host import cpu_name  # benchmarks/benchmark_host.py, beside this script




def build_folder(folder: Path, samples: int, per_sample: int = 5, size: int = 64) -> Path:
    """A finished-looking output folder: images with their text, image_generation_log.json and the summary."""
    import numpy as np

    from music2image.outputs import LOG_NAME, SUMMARY_NAME, a1111_parameters, encode_image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for sample_idx in range(samples):
        (folder / f"sample_{sample_idx:03d}").mkdir(exist_ok=True)
        for prompt_id in range(per_sample):
            mode, temperature = ("convergent", 0.4) if prompt_id < 3 else ("divergent", 0.8)
            prompt = f"a calm blue lake at dusk, painting number {sample_idx}-{prompt_id}"
            seed = sample_idx * 1000 + prompt_id
            relative = f"sample_{sample_idx:03d}/sample_{sample_idx:03d}_prompt_{prompt_id:02d}.png"
            recipe = {"sample_idx": sample_idx, "prompt_id": prompt_id, "mode": mode, "temperature": temperature,
                      "prompt": prompt, "seed": seed, "device": "cpu",
                      "recipe": {"model": "tiny", "width": size, "height": size, "steps": 2, "scheduler": "euler",
                                 "guidance_scale": 5.0, "seed": 0, "dtype": "float32"}}
            text = {"parameters": a1111_parameters(prompt, None, {"Steps": 2, "Seed": seed, "Size": f"{size}x{size}"}),
                    "music2image": json.dumps(recipe)}
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            (folder / relative).write_bytes(encode_image(pixels, "png", text))
            entries.append({"sample_idx": sample_idx, "prompt_id": prompt_id, "mode": mode,
                            "temperature": temperature, "visual_prompt": prompt, "image_path": relative,
                            "status": "success", "seed": seed, "error": None})
    log = {"metadata": {"prompts_file": "prompts.json", "successful": len(entries), "failed": 0,
                        "image_width": size, "image_height": size, "num_inference_steps": 2, "model": "tiny",
                        "device": "cpu"},
           "generated_images": entries, "skipped_samples": []}
    (folder / LOG_NAME).write_text(json.dumps(log))
    by_sample = {str(i): {"convergent": 3, "divergent": per_sample - 3, "failed": 0} for i in range(samples)}
    summary = {"total_images_generated": len(entries), "total_images_failed": 0, "success_rate": 100.0,
               "by_mode": {"convergent": 3 * samples, "divergent": (per_sample - 3) * samples},
               "by_sample": by_sample, "image_dimensions": f"{size}x{size}", "inference_steps": 2,
               "used_refiner": False, "device": "cpu", "output_directory": str(folder), "skipped_samples": [],
               "failures": []}
    (folder / SUMMARY_NAME).write_text(json.dumps(summary))
    return folder


def largest(paths) -> tuple[int, str]:
    sized = [(path.stat().st_size, path.name) for path in paths]
    return max(sized) if sized else (0, "")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--per-sample", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default: %(default)s)")
    parser.add_argument("--keep", type=Path, help="build the folder here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)

    from PIL import Image

    from music2image.report import make_gallery, make_grids

    root = args.keep or Path(tempfile.mkdtemp(prefix="report-scale-"))
    try:
        started = time.perf_counter()
        folder = build_folder(root / "images", args.samples, args.per_sample, args.size)
        build_s = time.perf_counter() - started

        started = time.perf_counter()
        written = make_grids(folder)
        grid_s = time.perf_counter() - started
        pixels, name = max((w * h, p.name) for p in written for w, h in [Image.open(p).size])
        with Image.open(folder / "grids" / name) as biggest:
            largest_image = f"{biggest.width}x{biggest.height}"

        started = time.perf_counter()
        make_gallery(folder)
        gallery_s = time.perf_counter() - started
        started = time.perf_counter()
        make_gallery(folder)
        gallery_cached_s = time.perf_counter() - started
        pages = [folder / "index.html", *sorted((folder / "gallery").glob("page_*.html"))]
        page_bytes, page_name = largest(pages)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    images = args.samples * args.per_sample
    print(f"{args.samples} samples x {args.per_sample} images of {args.size}x{args.size} px, CPU: {cpu_name()}")
    print(f"  built the folder in {build_s:.1f} s")
    print(f"  grid:    {grid_s:7.1f} s  {len(written)} files; largest image {name} {largest_image} px")
    print(f"  gallery: {gallery_s:7.1f} s  {len(pages)} pages; largest page {page_name} {page_bytes / 1024:.0f} KiB")
    print(f"  gallery again (thumbnails cached): {gallery_cached_s:.1f} s")
    record = {"samples": args.samples, "per_sample": args.per_sample, "images": images, "size": args.size,
              "cpu": cpu_name(), "grid_s": round(grid_s, 2), "grid_files": len(written),
              "largest_image": largest_image, "largest_image_pixels": pixels, "gallery_s": round(gallery_s, 2),
              "gallery_cached_s": round(gallery_cached_s, 2), "gallery_pages": len(pages),
              "largest_page_bytes": page_bytes}
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
