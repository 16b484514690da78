"""Resume at scale: a 100k-prompt file and a finished folder whose journal holds 100k records.

    python benchmarks/resume_scale.py [--prompts 100000] [--side 8] [--workdir DIR] [--compare-src OLD/src]

Builds (once, in --workdir) a prompts file of N prompts (N/5 samples × 5) and a finished output folder for it: one
real PNG per prompt (--side × --side pixels of noise, with the recipe inside, written as the run writes them) and a
journal of N image records in the writer's format. Then times, each phase in a fresh Python process (so each
peak RSS is its own):

  plan      load + validate + select the prompts file, the recipe, plan_jobs
  resume    plan, then read_state + is_finished for every job: the default check (recorded size + mtime)
  verify    the same with --verify (every image re-hashed: what every resume did before)
  legacy    the same on a journal without sizes (one written before they were recorded): hashed
  generate  `music2image generate --model tiny` on the finished folder, end to end (nothing to make: it plans,
            decides, and rewrites log and summary)

`--compare-src` runs the phases again with another checkout's src/ first on PYTHONPATH (e.g. the code before this
change), on the same files. Hashing cost grows with image bytes: the --side 8 PNGs here are ~250 bytes; a 768×768
PNG is ~1 MB, so `verify`/`legacy` read ~4000× more there, while `resume` stays one stat per image.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PHASES = ("plan", "resume", "verify", "legacy", "generate")
# dtype named: `auto` resolves to bfloat16 on CPUs with native bf16, and the folder is built with one recipe.
SETTINGS = dict(model="tiny", width=64, height=64, steps=2, dtype="float32")


def build(workdir: Path, prompts: int, side: int) -> tuple[Path, Path, Path]:
    import numpy as np

    from music2image.journal import JOURNAL_NAME, ImageRecord
    from music2image.outputs.image import encode_image
    from music2image.plan import plan_jobs
    from music2image.prompts import load_prompts, select_prompts
    from music2image.recipe import image_metadata, recipe_of
    from music2image.settings import GenerationSettings

    prompts_file, images = workdir / "prompts.json", workdir / "images"
    legacy = workdir / "images_legacy_journal"
    if (images / JOURNAL_NAME).is_file() and (legacy / JOURNAL_NAME).is_file():
        return prompts_file, images, legacy
    words = ["golden", "stage", "violet", "sea", "quiet", "forest", "neon", "street", "calm", "lake", "storm", "choir"]
    samples = []
    for idx in range(prompts // 5):
        samples.append({"sample_idx": idx, "musical_features": {"key": "C", "tempo": 120.0}, "prompts": [
            {"prompt_id": pid, "mode": "convergent" if pid < 3 else "divergent", "temperature": 0.4 if pid < 3 else 0.8,
             "visual_prompt": " ".join(words[(idx * 7 + pid * 3 + k) % len(words)] for k in range(40))
             + f", painting {idx}-{pid}"} for pid in range(5)]})
    prompts_file.write_text(json.dumps({"metadata": {"source": "resume_scale"}, "samples": samples}))

    settings = GenerationSettings(**SETTINGS)
    recipe = recipe_of(settings, "float32")
    jobs = plan_jobs(select_prompts(load_prompts(prompts_file)).prompts, settings, recipe)
    rng = np.random.default_rng(0)
    images.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"type": "run", "run": 1, "t": time.time(), "recipe": recipe, "selected": len(jobs),
                         "todo": len(jobs)}, sort_keys=True)]
    legacy_lines = [lines[0]]
    for job in jobs:
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        data = encode_image(pixels, "png", image_metadata(job, settings, recipe, "cpu", versions={"bench": "1"}))
        target = images / job.image_path
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(data)
        written = target.stat()
        record = ImageRecord.made(job, status="success", image_path=job.image_path,
                                  sha256=hashlib.sha256(data).hexdigest(), seconds=1.0, token_count=40,
                                  prompt_encoding="full", device="cpu", run=1, saved=True)
        entry = {**record.to_journal(pid=1, t=time.time(), time="2026-11-27T00:00:00+00:00"),
                 "size": written.st_size, "mtime_ns": written.st_mtime_ns}
        lines.append(json.dumps(entry, ensure_ascii=False, sort_keys=True))
        legacy_lines.append(json.dumps({k: v for k, v in entry.items() if k not in ("size", "mtime_ns")},
                                       ensure_ascii=False, sort_keys=True))
    (images / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    # The same images, and a journal from before sizes were recorded (hard links: no second copy of the files).
    for job in jobs:
        (legacy / job.image_path).parent.mkdir(parents=True, exist_ok=True)
        os.link(images / job.image_path, legacy / job.image_path)
    (legacy / JOURNAL_NAME).write_text("\n".join(legacy_lines) + "\n")
    return prompts_file, images, legacy


def phase(name: str, prompts_file: Path, folder: Path) -> dict:
    """One measured phase, in this (fresh) process."""
    started = time.perf_counter()
    if name == "generate":
        from music2image.cli import main

        code = main(["generate", "--prompts-file", str(prompts_file), "--output-dir", str(folder), "--quiet",
                     *(f"--{k}={v}" for k, v in SETTINGS.items())])
        assert code == 0, code
        # Measured before the log is read back to count: parsing the 69 MB log takes ~200 MB by itself (a fresh
        # process), which would be reported as the run's peak once the run's own is lower.
        measured = _measured(started)
        done = json.loads((folder / "image_generation_log.json").read_text())["metadata"]["successful"]
        return {"phase": name, **measured, "finished": done}
    else:
        from music2image.journal import is_finished, read_state
        from music2image.plan import plan_jobs
        from music2image.prompts import load_prompts, select_prompts
        from music2image.recipe import recipe_of
        from music2image.settings import GenerationSettings

        settings = GenerationSettings(**SETTINGS)
        jobs = plan_jobs(select_prompts(load_prompts(prompts_file)).prompts, settings, recipe_of(settings, "float32"))
        done = len(jobs)
        if name != "plan":
            state = read_state(folder)
            verify = {"verify": True} if name == "verify" else {}
            if verify and "verify" not in inspect.signature(is_finished).parameters:
                verify = {}  # code from before --verify: it always hashes
            done = sum(is_finished(job, state.images.get(job.key), folder, **verify) for job in jobs)
    return {"phase": name, **_measured(started), "finished": done}


def _measured(started: float) -> dict:
    import resource

    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024  # Linux: KiB
    # CPU seconds of the whole process (imports included): on a shared machine a steadier figure than the wall time.
    return {"seconds": round(seconds, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(peak / 1e6)}


def run_phases(src: str, prompts_file: Path, images: Path, legacy: Path) -> list[dict]:
    results = []
    for name in PHASES:
        folder = legacy if name == "legacy" else images
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run([sys.executable, __file__, "--phase", name, str(prompts_file), str(folder)], env=env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"phase {name} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        print(json.dumps(phase(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        build(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--side", type=int, default=8, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path("resume_scale_work"))
    parser.add_argument("--compare-src", help="another checkout's src/ to time on the same files")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parents[1] / "src")
    sys.path.insert(0, here)
    started = time.perf_counter()
    # Built in a process of its own: a phase forked from a parent that built 100k images would report the parent's
    # peak RSS as its own (Linux keeps ru_maxrss across fork and exec).
    subprocess.run([sys.executable, __file__, "--build", str(args.workdir), str(args.prompts), str(args.side)],
                   check=True)
    prompts_file, images, legacy = (args.workdir / "prompts.json", args.workdir / "images",
                                    args.workdir / "images_legacy_journal")
    print(f"{args.prompts} prompts, {args.side}x{args.side} PNGs; files ready in {time.perf_counter() - started:.1f} s "
          f"({platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    sources = [("this checkout", here)] + ([("--compare-src", args.compare_src)] if args.compare_src else [])
    print(f"{'code':<14} {'phase':<9} {'seconds':>8} {'CPU s':>6} {'peak RSS MB':>12} {'finished':>9}")
    for label, src in sources:
        for result in run_phases(src, prompts_file, images, legacy):
            print(f"{label:<14} {result['phase']:<9} {result['seconds']:>8} {result.get('cpu_seconds', ''):>6} "
                  f"{result['peak_rss_mb']:>12} "
                  f"{result['finished']:>9}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
