#!/usr/bin/env python3
"""Peak memory and time of `music2image prompts` on one long file (default: an hour of 44.1 kHz stereo 16-bit WAV,
635 MB, written block by block into a temporary folder and deleted afterwards).

    python benchmarks/long_audio.py                 # one hour
    python benchmarks/long_audio.py --minutes 10

The file is music-like (a chord progression at 96 BPM from tests/helpers/synth.py, repeated); `prompts` runs in a
child process, whose peak resident memory (ru_maxrss) is what is reported. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_long_wav(path: Path, minutes: float, rate: int = 44100) -> None:
    import numpy as np
    import soundfile

    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    from synth import progression

    chunk = progression(62, "minor", 96, 20, rate=rate)  # 20 s, repeated
    stereo = np.stack([chunk, 0.8 * chunk], axis=1)
    total = int(minutes * 60 * rate)
    with soundfile.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as out:
        written = 0
        while written < total:
            block = stereo[: total - written]
            out.write(block)
            written += len(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        write_long_wav(wav, args.minutes)
        size = wav.stat().st_size
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "music2image", "prompts", str(wav), "--output",
                                str(Path(tmp) / "p.json"), "--quiet"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        seconds = time.perf_counter() - started
        if child.returncode != 0:
            sys.exit(child.stderr)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB
        sample = json.loads((Path(tmp) / "p.json").read_text())["samples"][0]
    analysed = sample.get("analysed_audio", {"method": "whole"})
    print(f"{args.minutes:g} min of 44.1 kHz stereo WAV ({size / 2**20:.0f} MiB): peak RSS {peak_mib:.0f} MiB, "
          f"{seconds:.1f} s; analysed: {analysed['method']}"
          + (f", {len(analysed['windows'])} windows of {analysed['windows'][0][1]:g} s" if analysed["method"] == "windows" else ""))
    print(json.dumps({"minutes": args.minutes, "file_mib": round(size / 2**20, 1), "peak_rss_mib": round(peak_mib),
                      "seconds": round(seconds, 1), "analysed": analysed["method"],
                      "key": sample["musical_features"]["key"], "tonality": sample["musical_features"]["tonality"],
                      "tempo": sample["musical_features"]["tempo"]}))


if __name__ == "__main__":
    main()
