#!/usr/bin/env python3
"""Pulse clarity (music2image.music.pulse) of music with a beat against sound without one: where MIN_PULSE_CLARITY
sits between them, and by how much.

    python benchmarks/pulse_clarity.py --seed 2027 --seed 2028     # the draws to tune and check on
    python benchmarks/pulse_clarity.py --seed 2027 --noise-seeds 5  # a quick look

Music: every clip of each draw (benchmarks/music_corpus.py, built once), whole and its first 5 and 15 s, and the
rendered clips of tests/data. No pulse: noise made here with numpy, seeded: white, pink and brown; pink under a gain
that wanders 20 dB at 0.3 s (gusts), 1 s (swells) and 3 s (rain); Poisson clicks (drops on a roof), each at 3, 5, 10
and 30 s. Prints the lowest values of the music, the highest of the noise, the margins, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

RATE = 22050
NOISE_SECONDS = (3, 5, 10, 30)
NOISE_KINDS = ("white", "pink", "brown", "gusts", "swells", "rain", "drops")


def noise(kind: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng([NOISE_KINDS.index(kind), int(seconds), seed])
    size = int(seconds * RATE)
    frequencies = np.fft.rfftfreq(size, 1 / RATE)
    if kind == "drops":  # short decaying bursts at Poisson times, 15 a second, random levels
        audio = np.zeros(size)
        burst = int(0.005 * RATE)
        times = np.cumsum(rng.exponential(1 / 15, int(seconds * 30)))
        for start in (times[times < seconds - 0.01] * RATE).astype(int):
            audio[start:start + burst] += (rng.standard_normal(burst) * np.exp(-np.arange(burst) / (0.001 * RATE))
                                           * rng.uniform(0.2, 1.0))
        return (audio / np.abs(audio).max()).astype(np.float32)
    exponent = {"white": 0, "pink": 1, "brown": 2}.get(kind, 1)
    audio = np.fft.irfft(np.fft.rfft(rng.standard_normal(size)) / np.maximum(frequencies, 1.0) ** (exponent / 2), size)
    gust_seconds = {"gusts": 0.3, "swells": 1.0, "rain": 3.0}.get(kind)
    if gust_seconds:
        smooth = np.exp(-0.5 * (2 * np.pi * frequencies * gust_seconds) ** 2)
        gain = np.fft.irfft(np.fft.rfft(rng.standard_normal(size)) * smooth, size)
        audio *= 0.1 + 0.9 * (gain - gain.min()) / (gain.max() - gain.min())
    return (audio / np.abs(audio).max()).astype(np.float32)


def clarity(audio: np.ndarray, seconds: float | None = None) -> float:
    import librosa

    from music2image.music.features import SAMPLE_RATE, TEMPO_HOP, TEMPO_RANGE_BPM
    from music2image.music.pulse import band_envelopes, pulse_clarity

    audio = audio[: int(seconds * SAMPLE_RATE)] if seconds else audio
    audio = audio - audio.mean()
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=TEMPO_HOP))
    return pulse_clarity(band_envelopes(mel_db, SAMPLE_RATE, TEMPO_HOP), SAMPLE_RATE / TEMPO_HOP, TEMPO_RANGE_BPM)


def main() -> None:
    import librosa
    import soundfile
    from music_corpus import build, default_cache

    from music2image.music.features import MIN_PULSE_CLARITY, SAMPLE_RATE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, action="append", required=True,
                        help="a draw of the evaluation set (repeat for several); the reported draws are not for tuning")
    parser.add_argument("--noise-seeds", type=int, default=30, help="noise clips per kind and length (default 30; "
                        "a quarter of them at 30 s)")
    args = parser.parse_args()

    def load(path: Path) -> np.ndarray:
        audio, rate = soundfile.read(str(path), dtype="float32")
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        return librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE) if rate != SAMPLE_RATE else audio

    result = {"threshold": MIN_PULSE_CLARITY, "music": {}, "noise": {}}
    for seed in args.seed:
        cache = default_cache(seed)
        clips = build(cache, seed=seed)
        audios = {clip["file"]: (load(cache / clip["file"]), clip["instrument"]) for clip in clips}
        for label, seconds in (("whole", None), ("first 15 s", 15), ("first 5 s", 5)):
            values = {name: clarity(audio, seconds) for name, (audio, _) in audios.items()}
            lowest = min(values, key=values.get)
            below = sum(v < MIN_PULSE_CLARITY for v in values.values())
            print(f"draw {seed}, {label:<10}: lowest {values[lowest]:6.2f} ({lowest}, {audios[lowest][1]}), "
                  f"median {np.median(list(values.values())):6.2f}, {below} of {len(values)} below the threshold")
            result["music"][f"{seed} {label}"] = {"lowest": round(values[lowest], 2), "clip": lowest, "below": below}
    tests_data = Path(__file__).resolve().parent.parent / "tests" / "data"
    test_values = {path.name: clarity(load(path)) for path in sorted(tests_data.glob("*.ogg"))}
    lowest = min(test_values, key=test_values.get)
    print(f"tests/data clips: lowest {test_values[lowest]:.2f} ({lowest})")
    result["music"]["tests/data"] = {"lowest": round(test_values[lowest], 2), "clip": lowest}

    for kind in NOISE_KINDS:
        values = {seconds: [clarity(noise(kind, seconds, seed))
                            for seed in range(args.noise_seeds if seconds < 30 else max(1, args.noise_seeds // 4))]
                  for seconds in NOISE_SECONDS}
        print(f"noise {kind:<7}: highest " + ", ".join(f"{s} s {max(v):.2f}" for s, v in values.items()))
        result["noise"][kind] = round(max(max(v) for v in values.values()), 2)
    highest = max(result["noise"].values())
    whole = min(v["lowest"] for k, v in result["music"].items() if k.endswith("whole"))
    result["margins"] = {"threshold_over_noise": round(MIN_PULSE_CLARITY / highest, 2),
                         "whole_clips_over_threshold": round(whole / MIN_PULSE_CLARITY, 2),
                         "tests_data_over_threshold": round(result["music"]["tests/data"]["lowest"] / MIN_PULSE_CLARITY, 2)}
    print(f"threshold {MIN_PULSE_CLARITY}: {result['margins']['threshold_over_noise']}x the highest noise ({highest}); "
          f"the lowest whole clip {result['margins']['whole_clips_over_threshold']}x it, the lowest tests/data clip "
          f"{result['margins']['tests_data_over_threshold']}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
