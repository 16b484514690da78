#!/usr/bin/env python3
"""Can another cue tell a slow beat from its doubled octave better than the tempo prior does? Measured, draw
against draw, on the evaluation set (benchmarks/music_corpus.py).

    python benchmarks/tempo_octave.py --seed 2027 --seed 2028     # the tuning and the check draw

The tempo's metrical level is found first, then its octave (music2image.music.features.tempo_candidates,
octave_salience): most misses left are a slow beat (58–75 quarter notes a minute) read at its eighth notes. For every
clip whose choice is between a beat and its double, and whose truth is one of them, the cues of each octave pair:
- `median`: the median onset envelope's autocorrelation at the slow beat over that at the fast one (today's cue);
- `prior`: the log-normal tempo prior's ratio, slow over fast (today's other factor);
- `broad`: the same autocorrelation ratio on an envelope of how many mel bands rise at once (a chord struck by
  every voice against a passing note in one: the beat of a chorale should be broad);
- `low`: the same on the lowest band's envelope (the bass, which in a chorale moves on the beat);
- `alt_*`: strong/weak alternation of those envelopes at the beats tracked at the fast octave (a subdivision
  alternates, a beat does not).
Rules: today's (slow if median × prior > 1); each cue × prior with a threshold fitted on one draw; a logistic
regression on the log cues fitted on one draw. Every rule is scored on the other draw, both ways round. Then the
tempo refinement's beat-tracker tightness (400 today; 100 is librosa's default). Prints a table, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

TIGHTNESSES = (400, 100)  # features.BEAT_TIGHTNESS today, and librosa's default
BROAD_RISE_DB = 2.0  # a mel band "rises" when its level grows by this much from one frame to the next
CUES = ("median", "prior", "broad", "low", "alt_median", "alt_broad", "alt_low")
COMBINATIONS = (("median", "prior"), ("median", "broad", "prior"), ("median", "low", "prior"),
                ("median", "alt_broad", "prior"), CUES)


def _alternation(envelope: np.ndarray, beats: np.ndarray) -> float:
    peaks = np.array([envelope[max(0, b - 2): b + 3].max() for b in beats])
    even, odd = peaks[0::2].mean(), peaks[1::2].mean()
    return float(max(even, odd) / max(min(even, odd), 1e-9))


def clip_cues(mel_db: np.ndarray, candidates, truth: float) -> dict | None:
    """The octave pair's cues and which of the two the truth is; None when the clip has no pair to choose from or
    its truth is neither."""
    import librosa

    from music2image.music import features

    if candidates is None or len(candidates[1]) < 2:
        return None
    envelope, octaves, autocorrelation = candidates
    ranked = sorted(octaves, key=lambda bpm: features.octave_salience(autocorrelation, bpm), reverse=True)
    chosen = ranked[0]
    rival = next(bpm for bpm in ranked[1:] if abs(np.log2(bpm / chosen)) < 1.01)
    slow, fast = min(chosen, rival), max(chosen, rival)

    def near(bpm: float) -> bool:
        return abs(bpm - truth) / truth <= 0.04

    # The refined tempo is what is scored; its ratio to the grid choice carries over to the rival octave.
    refined = features.refined_tempo(envelope, chosen)[0] / chosen
    label = "slow" if near(slow * refined) else "fast" if near(fast * refined) else None
    if label is None:
        return None
    rate, hop = features.SAMPLE_RATE, features.TEMPO_HOP
    rise = np.maximum(0.0, np.diff(mel_db, axis=1))
    broad = np.concatenate([[0.0], (rise > BROAD_RISE_DB).mean(axis=0)])
    low = librosa.onset.onset_strength_multi(S=mel_db, sr=rate, hop_length=hop, aggregate=np.median,
                                             channels=list(features.TEMPO_BAND_EDGES[:2]))[0]
    _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=rate, hop_length=hop, bpm=fast,
                                       tightness=features.BEAT_TIGHTNESS)

    def ratio(curve: np.ndarray) -> float:
        at = [float(np.interp(np.log(bpm), np.log(features.TEMPO_GRID_BPM), curve)) for bpm in (slow, fast)]
        return at[0] / max(at[1], 1e-9)

    return {"label": label, "chosen": "slow" if chosen == slow else "fast", "median": ratio(autocorrelation),
            "prior": features.tempo_prior(slow) / features.tempo_prior(fast),
            "broad": ratio(features._autocorrelation_salience(broad)),
            "low": ratio(features._autocorrelation_salience(low)), "alt_median": _alternation(envelope, beats),
            "alt_broad": _alternation(broad, beats), "alt_low": _alternation(low, beats)}


def tightness_hits(candidates, truth: float) -> dict[int, bool]:
    """Is the refined tempo within 4 %, with the beat tracker at today's tightness (400) and librosa's default?"""
    from music2image.music.features import octave_salience, refined_tempo

    if candidates is None:
        return {k: False for k in TIGHTNESSES}
    envelope, octaves, autocorrelation = candidates
    chosen = max(octaves, key=lambda bpm: octave_salience(autocorrelation, bpm))
    return {k: abs(refined_tempo(envelope, chosen, k)[0] - truth) / truth <= 0.04 for k in TIGHTNESSES}


def _design(rows: list[dict], cues: tuple[str, ...]) -> np.ndarray:
    return np.column_stack([np.log([[r[c] for c in cues] for r in rows]), np.ones(len(rows))])


def _is_slow(rows: list[dict]) -> np.ndarray:
    return np.array([r["label"] == "slow" for r in rows], dtype=float)


def fit_logistic(rows: list[dict], cues: tuple[str, ...], ridge: float = 0.01) -> np.ndarray:
    from scipy.optimize import minimize

    design, sign = _design(rows, cues), 2 * _is_slow(rows) - 1

    def loss(weights: np.ndarray) -> float:
        return float(np.sum(np.logaddexp(0.0, -sign * (design @ weights))) + ridge * np.sum(weights[:-1] ** 2))

    return minimize(loss, np.zeros(design.shape[1])).x


def right(rows: list[dict], says_slow: np.ndarray) -> int:
    return int(np.sum(says_slow == _is_slow(rows).astype(bool)))


def best_threshold(rows: list[dict], cue: str) -> float:
    values = np.log([r[cue] * r["prior"] for r in rows])
    thresholds = np.concatenate([[-np.inf], np.sort(values)])
    return float(max(thresholds, key=lambda t: right(rows, values > t)))


def main() -> None:
    import soundfile
    from music_corpus import build, default_cache

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, action="append", required=True,
                        help="a draw (twice: each rule is fitted on one and scored on the other)")
    parser.add_argument("--limit", type=int, help="only the first N clips of each draw")
    args = parser.parse_args()
    if len(args.seed) != 2:
        parser.error("give two draws: --seed A --seed B")

    import librosa

    from music2image.music.features import SAMPLE_RATE, tempo_inputs

    draws, tightness = {}, {}
    for seed in args.seed:
        cache = default_cache(seed)
        clips = build(cache, seed=seed)[: args.limit]
        rows, hits = [], dict.fromkeys(TIGHTNESSES, 0)
        for clip in clips:
            audio, rate = soundfile.read(str(cache / clip["file"]), dtype="float32")
            if rate != SAMPLE_RATE:
                audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
            mel_db, candidates = tempo_inputs(audio - audio.mean())  # as analyse() hands it over
            cues = clip_cues(mel_db, candidates, clip["bpm"])
            if cues is not None:
                rows.append(cues)
            for k, hit in tightness_hits(candidates, clip["bpm"]).items():
                hits[k] += hit
        draws[seed] = rows
        tightness[seed] = {k: v / len(clips) for k, v in hits.items()}

    a, b = args.seed
    table = {}
    table["today: median x prior > 1"] = [right(draws[s], np.array([r["median"] * r["prior"] > 1 for r in draws[s]]))
                                          for s in (a, b)]
    for cue in ("median", "broad", "low"):
        scored = []
        for fit_on, score_on in ((a, b), (b, a)):
            threshold = best_threshold(draws[fit_on], cue)
            scored.append(right(draws[score_on], np.log([r[cue] * r["prior"] for r in draws[score_on]]) > threshold))
        table[f"{cue} x prior > threshold fitted on the other draw"] = scored[::-1]
    for cues in COMBINATIONS:
        scored = []
        for fit_on, score_on in ((a, b), (b, a)):
            weights = fit_logistic(draws[fit_on], cues)
            scored.append(right(draws[score_on], _design(draws[score_on], cues) @ weights > 0))
        table[f"logistic({', '.join(cues)}) fitted on the other draw"] = scored[::-1]

    counts = {s: len(draws[s]) for s in (a, b)}
    print(f"octave pairs with the truth in them: {counts[a]} on {a}, {counts[b]} on {b} "
          f"(slow truth: {int(_is_slow(draws[a]).sum())}, {int(_is_slow(draws[b]).sum())})")
    print(f"{'rule (right octave choices)':<76}{a:>6}{b:>6}")
    for name, (on_a, on_b) in table.items():
        print(f"{name:<76}{on_a:>6}{on_b:>6}")
    for seed in (a, b):
        print(f"tempo within 4 % on {seed}, refined at tightness {' / '.join(map(str, TIGHTNESSES))}: "
              + " / ".join(f"{tightness[seed][k]:.3f}" for k in TIGHTNESSES))
    print(json.dumps({"pairs": counts, "right": table, "tempo_4pct_by_tightness": tightness}))


if __name__ == "__main__":
    main()
