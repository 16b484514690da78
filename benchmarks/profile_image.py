"""Where the time of one image goes: cProfile of music2image making one image, top entries by cumulative time.

    python benchmarks/profile_image.py --model full-random --size 256 --steps 2

Prints, in seconds, the whole run, generation, the pipeline's denoising call, the VAE decode, text encoding, the
torch linear and conv2d kernels and model loading. cProfile sees the main thread only: image encoding and writing
run on the writer thread, beside the next batch.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, full-random or a diffusers folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    from throughput import model_path

    from music2image import BatchImageGenerator
    from music2image.engine import quiet_libraries

    quiet_libraries()
    document = {"samples": [{"sample_idx": 0, "prompts": [{"prompt_id": 0, "mode": "convergent",
                                                           "visual_prompt": "a red fox in deep snow"}]}]}
    with tempfile.TemporaryDirectory() as out:
        generator = BatchImageGenerator(document, out, model=model_path(args.model), width=args.size,
                                        height=args.size, steps=args.steps, device="cpu", progress=False)
        profile = cProfile.Profile()
        profile.enable()
        generator.run()
        profile.disable()
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, primitive, tottime, cumtime, callers)}

    def cumulative(file_part: str, name: str) -> float:
        return sum(v[3] for (file, _, func), v in stats.items() if file_part in file and func == name)

    def own(name: str) -> float:
        return sum(v[2] for (_, _, func), v in stats.items() if func == name)

    total = cumulative("music2image/run.py", "generate")
    generation = cumulative("music2image/engine/generate.py", "generate")
    rows = [
        ("whole run (load + generate + write)", total),
        ("generation (engine.generate)", generation),
        ("pipeline denoising call", cumulative("stable_diffusion_xl/pipeline_stable_diffusion_xl.py", "__call__")),
        ("VAE decode", cumulative("music2image/engine/generate.py", "decode")),
        ("text encoding", cumulative("music2image/text_encoding.py", "prompt_embeddings")),
        ("torch linear kernels (whole run)", own("<built-in method torch._C._nn.linear>")),
        ("torch conv2d kernels (whole run)", own("<built-in method torch.conv2d>")),
        ("model loading", cumulative("music2image/engine/generate.py", "load")),
    ]
    print(f"model {args.model}, {args.size}x{args.size}, {args.steps} steps, cpu")
    for label, seconds in rows:
        print(f"  {seconds:8.2f} s  {label}")


if __name__ == "__main__":
    main()
