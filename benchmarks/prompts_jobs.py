#!/usr/bin/env python3
"""How fast `prompts` analyses a folder of music with one process and with several, and how fast it resumes.

    python benchmarks/prompts_jobs.py                      # 32 synthesised 30 s clips, --jobs 1 against all CPUs
    python benchmarks/prompts_jobs.py --audio DIR --jobs 4 # your own folder

Side by side in one run (the machines here are shared: compare the ratio, not the seconds): write_prompts_file with
jobs=1, then with `--jobs` workers (default: one per CPU), each into a fresh file without the analysis cache; then
with the cache, a first run and a second one that finds every analysis kept (what a resumed or re-planned run costs).
Checks that all of them wrote the same bytes. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_host import cpu_flags, cpu_name

RATE = 22050


def synthesise(folder: Path, clips: int, seconds: float) -> None:
    """Chord progressions (triads with overtones, re-struck on every beat) in random keys and tempi."""
    import soundfile

    rng = np.random.default_rng(0)
    size = int(seconds * RATE)
    for index in range(clips):
        bpm, tonic, minor = rng.uniform(60, 160), rng.integers(48, 60), rng.random() < 0.5
        beat = int(60.0 / bpm * RATE)
        decay = np.exp(-np.arange(beat) / RATE * 3)
        audio = np.zeros(size + beat)
        for start in range(0, size, beat):  # one chord per bar of four beats: I, IV, V, I
            degree = (0, 5, 7, 0)[(start // (4 * beat)) % 4]
            third = 3 if minor and degree != 7 else 4
            t = np.arange(start, start + beat) / RATE
            for step in (0, third, 7):
                hz = 440.0 * 2 ** ((tonic + degree + step - 69) / 12)
                audio[start:start + beat] += decay * sum(np.sin(2 * np.pi * hz * k * t) / k for k in (1, 2, 3))
        audio = audio[:size]
        soundfile.write(str(folder / f"{index:03d}.wav"), (0.3 * audio / np.abs(audio).max()).astype(np.float32), RATE)


def timed(call) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its finished children)."""
    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    wall, used = time.perf_counter(), cpu()
    call()
    return time.perf_counter() - wall, cpu() - used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, help="a folder of audio (default: synthesised clips)")
    parser.add_argument("--clips", type=int, default=32, help="synthesised clips (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="each synthesised clip's length (default: %(default)s)")
    parser.add_argument("--jobs", type=int, help="workers to compare with one process (default: one per CPU)")
    args = parser.parse_args()

    from music2image.music import write_prompts_file

    jobs = args.jobs or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        audio = args.audio
        if audio is None:
            audio = scratch / "music"
            audio.mkdir()
            synthesise(audio, args.clips, args.seconds)
        files = sum(1 for p in audio.rglob("*") if p.is_file())
        runs = {
            "one process": lambda: write_prompts_file([audio], scratch / "one.json", jobs=1, cache_analyses=False),
            f"{jobs} workers": lambda: write_prompts_file([audio], scratch / "many.json", jobs=jobs,
                                                          cache_analyses=False),
            f"{jobs} workers, keeping analyses": lambda: write_prompts_file([audio], scratch / "kept.json", jobs=jobs),
            "again, every analysis kept": lambda: write_prompts_file([audio], scratch / "kept.json", jobs=jobs),
        }
        figures = {name: timed(run) for name, run in runs.items()}
        same = len({(scratch / name).read_bytes() for name in ("one.json", "many.json", "kept.json")}) == 1
    base = figures["one process"][0]
    print(f"{files} files; {len(os.sched_getaffinity(0))} CPUs ({cpu_name()}; {cpu_flags()})")
    print(f"{'run':<36}{'wall s':>9}{'CPU s':>9}{'files/s':>9}{'speed-up':>10}")
    for name, (wall, cpu) in figures.items():
        print(f"{name:<36}{wall:>9.1f}{cpu:>9.1f}{files / wall:>9.2f}{base / wall:>9.2f}x")
    print(f"same bytes from every run: {same}")
    print(json.dumps({"files": files, "jobs": jobs, "same_bytes": same,
                      "runs": {name: {"wall_s": round(w, 2), "cpu_s": round(c, 2), "speedup": round(base / w, 2)}
                               for name, (w, c) in figures.items()}}))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
