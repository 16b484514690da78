"""One command for a lent GPU: the seed-style loop against music2image at 768², 30 steps, float16, then the refiner,
on-GPU checks and --compile, sized by --budget-s so that it always ends in time.

    python benchmarks/gpu_check.py --budget-s 420 --out $OUT        # a bare H100/H200: about 7 minutes
    python benchmarks/gpu_check.py --tiny --budget-s 60             # the same code path on a CPU, tiny model
    python benchmarks/gpu_check.py --skip-compile --budget-s 240    # then, in a second call on the warm machine:
    python benchmarks/gpu_check.py --compile-only --budget-s 360    # defaults vs --compile on two full batches

1. Builds the full-size SDXL base and refiner (random weights, the shapes of sdxl_random.py) directly on the
   device in float16: weights are allocated and initialised there, in seconds. A probe runs one UNet step and one
   VAE decode; if either is not finite (or the decode is black), the offending module's weights are halved and
   the probe runs again. Those init retries are counted and reported.
2. Writes them once to a folder on tmpfs (/dev/shm) and loads everything from there. Why a folder and not an
   in-memory pipeline: the seed-style loop and music2image's public API both load with `from_pretrained`, which is
   the path a user's run takes; an in-memory seam would be an API made for this script alone. The write costs
   seconds (6.5 GB of float16 in 32 s on a 2-core CPU here, less with 16 cores) and is timed and reported apart.
3. Seed-style loop: one StableDiffusionXLPipeline call per prompt and a synchronous PNG save (as throughput.py).
   Its first full image calibrates the budget; then the image counts are fixed.
4. music2image with its defaults (BatchImageGenerator), twice on the same prompts: the second run must give
   byte-identical PNGs. Then base + refiner; a batch of N against N singles (the README: 8-bit values differ by
   at most one in float32; up to three were seen in float16/bfloat16); `offload="model"` and `vae_tiling=True`
   runs; last `compile=True` in a subprocess with a timeout, so an overlong compile cannot overrun the budget.
TFLOP per image are counted with FlopCounterMode on one UNet step (CFG batch of 2) and one VAE decode at the run's
size; the bf16 peak is a matmul loop measured in the same run. A timing with an NaN/black retry or a failed image
is reported as void. Writes gpu_check.json and gpu_check.md to --out (default $OUT, else ./gpu_check_out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gpu_check_parts as parts  # noqa: E402  (benchmarks/ is not a package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=420, help="wall-clock budget of the whole check")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out")
    parser.add_argument("--tiny", action="store_true", help="tiny model, 64x64, 2 steps: the code path on a CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-images", type=int, default=500, help="cap on the images per phase the budget allows")
    parser.add_argument("--skip-compile", action="store_true",
                        help="leave out the --compile phase (tests on a CPU; on a GPU, when a second call runs "
                        "--compile-only): the other phases then get the compile's share of the budget")
    parser.add_argument("--compile-only", action="store_true",
                        help="build the model, run the defaults on two batches, then the same with --compile, with "
                        "all the time left (a second device call, after one with --skip-compile)")
    parser.add_argument("--count-flops", action="store_true",
                        help="only count the full-size TFLOP per image at 768x768, 30 steps (meta device: no GPU)")
    parser.add_argument("--compile-phase", help=argparse.SUPPRESS)  # internal: the --compile subprocess
    args = parser.parse_args()
    if args.count_flops:
        print(json.dumps(parts.count_on_meta(768, 30)))
        return
    if args.compile_phase:
        print(json.dumps(parts.compile_phase(json.loads(args.compile_phase))))
        return
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything loads from local folders; the lent machine has no network
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="m2i-gpu-check-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    report = parts.Report(out, args.budget_s)
    try:
        run(args, report, work, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        report.save(time.perf_counter() - started)
        print(report.markdown())
        print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")


def run(args, report, work: Path, started: float) -> None:
    import torch

    from music2image.engine import available_device, quiet_libraries

    quiet_libraries()
    device = available_device(args.device)
    cuda = device.startswith("cuda")
    size, steps = (64, 2) if args.tiny else (768, 30)
    left = lambda: args.budget_s - (time.perf_counter() - started)  # noqa: E731

    # 1. The machine and its measured ceiling.
    report.env(device, size, steps, args.tiny)
    report.data["bf16_peak_tflops"] = parts.bf16_matmul_peak_tflops(device)
    report.save(time.perf_counter() - started)

    # 2. Random base + refiner, built on the device, probed for finite float16, written to tmpfs.
    dtype = torch.float16 if cuda else torch.float32  # music2image refuses float16 on a CPU
    build = parts.build_on_device(work / "model", device, dtype, size, steps, tiny=args.tiny)
    report.data["build"] = build
    report.save(time.perf_counter() - started)
    model = str(work / "model" / "base")
    prompts = parts.visual_prompts()

    full_batch = parts.GPU_BATCH if cuda else 1  # what --batch-size auto picks at 768² on an H100/H200 (its cap)
    common = dict(model=model, width=size, height=size, steps=steps, device=device)
    if args.compile_only:
        chosen = prompts[: 2 * full_batch]
        reference = parts.music2image_run(chosen, work / "m2i_a", **common)
        report.phase("music2image defaults (uncompiled, the reference)", reference, build["tflop_per_image"])
        report.save(time.perf_counter() - started)
        compile_phase(report, work, chosen, common, build, left() - 10, 0)
        return

    # 3. Seed-style loop: calibrate on one full image, then fix every count from the time left.
    seed = parts.SeedLoop(model, device, dtype, size, steps, work / "seed")
    first_image_s = seed.calibrate(prompts[0])
    plan = parts.plan_counts(left(), first_image_s, seed.load_s, args.max_images, full_batch,
                             compile_reserve=0.0 if args.skip_compile else parts.COMPILE_RESERVE)
    report.data["plan"] = plan
    chosen = prompts[: plan["images"]]
    report.phase(parts.SEED_LOOP, seed.run(chosen), build["tflop_per_image"])
    seed.close()

    def fits(name: str, images: int, factor: float = 1.0) -> bool:
        """Whether a phase of `images` images (each `factor` seed-loop images) still fits; if not, it is skipped."""
        need = plan["load_s"] + images * first_image_s * factor + 5
        if left() > need:
            return True
        report.skip(name, f"skipped: {max(left(), 0):.0f} s left, it needs about {need:.0f} s")
        return False

    # 4. music2image defaults, twice: speed, and the same bytes again.
    first = parts.music2image_run(chosen, work / "m2i_a", **common)
    report.phase("music2image defaults", first, build["tflop_per_image"])
    if fits("music2image defaults, same command again", len(chosen)):
        again = parts.music2image_run(chosen, work / "m2i_b", **common)
        report.phase("music2image defaults, same command again", again, build["tflop_per_image"])
        report.check("second run byte-identical", parts.same_bytes(work / "m2i_a", work / "m2i_b"))
    report.save(time.perf_counter() - started)

    # 5. Base + refiner (ensemble of expert denoisers, switch 0.8).
    if fits("music2image base + refiner", plan["refiner_images"], 1.2):
        refined = parts.music2image_run(chosen[: plan["refiner_images"]], work / "m2i_refiner", refiner=True,
                                        refiner_model=str(work / "model" / "refiner"), **common)
        report.phase("music2image base + refiner", refined, build["tflop_per_image_refiner"])
        report.save(time.perf_counter() - started)

    # 6. On-device checks: batch against singles, model offload, VAE tiling.
    check_prompts = chosen[: plan["check_images"]]
    batch = first["batch_size"] if first["batch_size"] > 1 else len(check_prompts)
    reference = work / "m2i_a" if first["batch_size"] > 1 else work / "m2i_batch"
    # The README's tolerance (equal within 1e-5 before rounding) is float32's; on a CPU the defaults may be bfloat16,
    # whose batched kernels round differently, so there the check runs in float32 (on a GPU: the defaults, float16).
    checked = common if cuda else dict(common, dtype="float32")
    if fits("check: batch against singles", 2 * len(check_prompts)):
        if first["batch_size"] == 1 or not cuda:
            reference = work / "m2i_batch"
            parts.music2image_run(check_prompts, reference, batch_size=batch, **checked)
        singles = parts.music2image_run(check_prompts, work / "m2i_single", batch_size=1, **checked)
        tolerance = parts.BATCH_TOLERANCE[singles["dtype"]]
        report.check(f"batch of {batch} equals singles (8-bit values within {tolerance}, {singles['dtype']})",
                     parts.within_tolerance(reference, work / "m2i_single", singles["images"], tolerance))
    if not cuda:
        report.check("--offload model runs", {"ok": None, "detail": "skipped: offloading needs a CUDA device"})
    elif fits("check: --offload model", 2, 2.0):
        offload = parts.music2image_run(check_prompts[:2], work / "m2i_offload", offload="model", **common)
        report.check("--offload model runs", parts.ran(offload))
    if fits("check: --vae-tiling", 2):
        tiled = parts.music2image_run(check_prompts[:2], work / "m2i_tiling", vae_tiling=True, **common)
        report.check("--vae-tiling runs", parts.ran(tiled))
    report.save(time.perf_counter() - started)

    # 7. --compile last, in a subprocess bounded by the time left (a compile cannot be interrupted in-process).
    if args.skip_compile:
        report.skip("music2image --compile", "skipped: --skip-compile")
        return
    compile_phase(report, work, chosen, common, build, left() - 10, plan["compile_min_s"])


def compile_phase(report, work: Path, chosen: list[str], common: dict, build: dict, timeout: float,
                  minimum: float) -> None:
    if timeout < minimum:
        report.skip("music2image --compile", f"skipped: {max(timeout, 0):.0f} s left, under {minimum} s")
        return
    config = dict(prompts=chosen, folder=str(work / "m2i_compile"), **common)
    try:
        done = subprocess.run([sys.executable, __file__, "--compile-phase", json.dumps(config)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        report.skip("music2image --compile", f"timed out: compile and run did not finish in {timeout:.0f} s")
        return
    if done.returncode != 0:
        report.skip("music2image --compile", f"failed: {done.stderr.strip().splitlines()[-1:]}")
        return
    report.phase("music2image --compile", json.loads(done.stdout.strip().splitlines()[-1]), build["tflop_per_image"])


if __name__ == "__main__":
    main()
