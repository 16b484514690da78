#!/usr/bin/env python3
"""Key, mode and tempo of the music stage measured against scores with a known key and tempo, the estimators before
issue 14 ("old": Krumhansl–Kessler profiles on chroma_stft, beat_track on a mean-aggregated onset envelope) and
today's (music2image.music.features.analyse) side by side.

    python benchmarks/music_accuracy.py                 # the whole set (built once, see music_corpus.py)
    python benchmarks/music_accuracy.py --limit 12      # a quick look
    python benchmarks/music_accuracy.py --seed 2027     # another draw, to tune on without touching the reported one

Prints a table and ends with one JSON line. Measures: key exact (tonic and mode); the MIREX weighted key score
(1 exact, 0.5 a fifth either way, 0.3 relative major/minor, 0.2 parallel); mode; tempo within 4 %; tempo within 4 %
allowing ×2 and ×½ (octave errors forgiven). Needs music21, fluidsynth and fluid-soundfont-gm (benchmark only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# The estimators before issue 14, kept here as the baseline.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def old_estimate(audio: np.ndarray, rate: int) -> tuple[int, str, float]:
    import librosa

    chroma = librosa.feature.chroma_stft(y=audio, sr=rate, n_fft=4096).mean(axis=1)
    fits = [(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1], tonic, mode)
            for profile, mode in ((KK_MAJOR, "major"), (KK_MINOR, "minor")) for tonic in range(12)]
    _, tonic, mode = max(fits)
    envelope = librosa.onset.onset_strength(y=audio, sr=rate)
    tempo = float(np.atleast_1d(librosa.beat.beat_track(onset_envelope=envelope, sr=rate)[0])[0])
    return tonic, mode, tempo


def new_estimate(audio: np.ndarray, rate: int):
    from music2image.music.features import analyse

    return analyse(audio, rate)


def mirex_key_score(tonic: int, mode: str, true_tonic: int, true_mode: str) -> float:
    """MIREX audio key detection weights."""
    step = (tonic - true_tonic) % 12
    if mode == true_mode:
        return 1.0 if step == 0 else 0.5 if step in (5, 7) else 0.0
    if mode == "minor" and step == 9 or mode == "major" and step == 3:  # relative
        return 0.3
    return 0.2 if step == 0 else 0.0


def tempo_hits(tempo: float | None, truth: float) -> tuple[bool, bool]:
    if tempo is None:  # no tempo given: a miss
        return False, False
    exact = abs(tempo - truth) / truth <= 0.04
    return exact, exact or any(abs(tempo * k - truth) / truth <= 0.04 for k in (2.0, 0.5))


def score(rows: list[dict], prefix: str) -> dict:
    n = len(rows)
    return {
        "key_exact": sum(r[f"{prefix}_tonic"] == r["tonic_pc"] and r[f"{prefix}_mode"] == r["mode"] for r in rows) / n,
        "key_weighted": sum(mirex_key_score(r[f"{prefix}_tonic"], r[f"{prefix}_mode"], r["tonic_pc"], r["mode"])
                            for r in rows) / n,
        "mode": sum(r[f"{prefix}_mode"] == r["mode"] for r in rows) / n,
        "fifth_up": sum((r[f"{prefix}_tonic"] - r["tonic_pc"]) % 12 == 7 for r in rows) / n,
        "tempo_4pct": sum(tempo_hits(r[f"{prefix}_tempo"], r["bpm"])[0] for r in rows) / n,
        "tempo_4pct_octaves": sum(tempo_hits(r[f"{prefix}_tempo"], r["bpm"])[1] for r in rows) / n,
    }


def main() -> None:
    import soundfile

    from music_corpus import SEED, build, default_cache

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED, help=f"which draw of the set (default {SEED}, the one "
                        "docs/PERFORMANCE.md reports; tune methods on another)")
    parser.add_argument("--cache", type=Path, help="where the set is rendered (kept; default by seed)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--rows", type=Path, help="also write each clip's truth, estimates and features here (JSON; "
                        "benchmarks/music_prompts.py reads it)")
    args = parser.parse_args()

    args.cache = args.cache or default_cache(args.seed)
    clips = build(args.cache, seed=args.seed)[: args.limit]
    rows, started = [], time.perf_counter()
    for clip in clips:
        audio, rate = soundfile.read(str(args.cache / clip["file"]), dtype="float32")
        old_tonic, old_mode, old_tempo = old_estimate(audio, rate)
        clip_started = time.perf_counter()
        features = new_estimate(audio, rate)
        new_seconds = time.perf_counter() - clip_started
        rows.append({**clip, "old_tonic": old_tonic, "old_mode": old_mode, "old_tempo": old_tempo,
                     "new_tonic": NOTE_NAMES.index(features.key), "new_mode": features.tonality,
                     "new_tempo": features.tempo, "new_seconds": new_seconds,
                     "new_duration": len(audio) / rate, "new_mode_confidence": features.mode_confidence,
                     "features": features.as_dict()})
    seconds = time.perf_counter() - started
    old, new = score(rows, "old"), score(rows, "new")
    sources = {s: sum(c["source"] == s for c in clips) for s in ("bach", "classical", "folk")}
    print(f"{len(rows)} clips ({', '.join(f'{v} {k}' for k, v in sources.items())}), "
          f"tempos {min(c['bpm'] for c in clips):.0f}–{max(c['bpm'] for c in clips):.0f} BPM, {seconds:.0f} s")
    print(f"{'measure':<28}{'old':>8}{'new':>8}")
    for name in old:
        print(f"{name:<28}{old[name]:>8.3f}{new[name]:>8.3f}")
    per_source = {s: score([r for r in rows if r["source"] == s], "new") for s in sources if sources[s]}
    for source, figures in per_source.items():
        print(f"new, {source} only: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    instruments = sorted({r["instrument"] for r in rows})
    wrong_keys = {name: [r["new_tonic"] != r["tonic_pc"] or r["new_mode"] != r["mode"] for r in rows
                         if r["instrument"] == name] for name in instruments}
    print("new, wrong keys by instrument: " + ", ".join(f"{name} {sum(w)}/{len(w)}" for name, w in wrong_keys.items()))
    wrong_mode = [r["new_mode_confidence"] for r in rows if r["new_mode"] != r["mode"]]
    right_mode = [r["new_mode_confidence"] for r in rows if r["new_mode"] == r["mode"]]
    print(f"mode confidence: right mode median {np.median(right_mode):.3f} (min {min(right_mode):.3f}); "
          f"wrong mode: {', '.join(f'{c:.3f}' for c in wrong_mode) or 'none'}")
    if args.rows:
        args.rows.write_text(json.dumps(rows, indent=1))
    print(json.dumps({"clips": len(rows), "old": {k: round(v, 4) for k, v in old.items()},
                      "new": {k: round(v, 4) for k, v in new.items()}, "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
