"""Test audio synthesised with numpy: chord progressions in a known key and mode at a known tempo, noise, silence."""

from __future__ import annotations

import numpy as np

RATE = 22050
# Semitones of the chord roots, and whether each chord is major, for I–IV–V–I and i–iv–V–i (harmonic minor's V).
PROGRESSIONS = {
    "major": [(0, "maj"), (5, "maj"), (7, "maj"), (0, "maj")],
    "minor": [(0, "min"), (5, "min"), (7, "maj"), (0, "min")],
}
TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7)}


def _tone(freq: float, length: int, rate: int) -> np.ndarray:
    t = np.arange(length) / rate
    return sum(amp * np.sin(2 * np.pi * freq * k * t) for k, amp in ((1, 1.0), (2, 0.4), (3, 0.2)))


def progression(tonic_midi: int, mode: str, bpm: float, seconds: float, rate: int = RATE,
                loudness: float = 0.3, brightness: float = 1.0) -> np.ndarray:
    """One chord per bar of 4 beats, every beat re-struck with a decaying envelope, a low click on each beat."""
    beat = 60.0 / bpm
    total = int(seconds * rate)
    out = np.zeros(total, dtype=np.float64)
    n_beats = int(seconds / beat)
    beat_len = int(beat * rate)
    envelope = np.exp(-np.arange(beat_len) / (0.25 * beat_len))
    chords = PROGRESSIONS[mode]
    for b in range(n_beats):
        start = int(b * beat * rate)
        length = min(beat_len, total - start)
        if length <= 0:
            break
        root, quality = chords[(b // 4) % len(chords)]
        midi = [tonic_midi + root + step for step in TRIADS[quality]] + [tonic_midi + root - 12]
        chord = sum(_tone(440.0 * 2 ** ((m - 69) / 12), length, rate) for m in midi)
        if brightness > 1:  # extra high partials: a brighter timbre
            chord = chord + sum(_tone(440.0 * 2 ** ((m - 57) / 12), length, rate) * 0.3 * (brightness - 1) for m in midi)
        click = np.zeros(length)
        click_len = min(length, int(0.02 * rate))
        click[:click_len] = np.sin(2 * np.pi * 60 * np.arange(click_len) / rate) * np.linspace(1, 0, click_len)
        out[start : start + length] += chord * envelope[:length] + 2.0 * click
    out *= loudness / np.max(np.abs(out))
    return out.astype(np.float32)


def noise_bursts(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    for start in range(0, out.size, rate // 2):
        length = min(rate // 10, out.size - start)
        out[start : start + length] = rng.normal(0, 0.3, length)
    return out


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def write_wav(path, audio: np.ndarray, rate: int = RATE, subtype: str | None = None) -> None:
    import soundfile

    soundfile.write(str(path), audio, rate, subtype=subtype)
