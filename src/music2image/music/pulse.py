"""Pulse clarity: is there a beat to give a tempo for, or only sound (noise, wind, rain, a ringing chord)?

The measure follows Lartillot, Eerola, Toiviainen & Fornari (2008, "Multi-feature modeling of pulse clarity", ISMIR):
the autocorrelation of the onset envelope, read at the beat's lag. Two changes make it tell noise from music. The
autocorrelation is read as evidence against chance: each lag's unbiased autocorrelation times √(frames it overlaps)
is a z-score under the null of an envelope without periodicity (Bartlett 1946; Box & Jenkins, "Time series analysis",
§6.2), so the same threshold holds for 5 s and 60 s. And a pulse repeats: the z-scores are summed over the first
PULSE_MULTIPLES multiples of the beat lag (a comb, as in Scheirer's 1998 resonators), and over PULSE_BANDS mel bands,
whose envelopes are independent under the null (noise in one band says nothing of another) but share the music's
beat (Klapuri, Eronen & Astola 2006). A random peak at one lag of one band scores little; a beat scores at every
multiple, in most bands. Silence or a single onset leave the envelopes flat: clarity 0. A ringing chord does not: its
partials beat (C4's third against G5: 0.9 Hz), which is periodic; estimate_tempo's median envelope over all bands,
flat there, is what rules the chord out. benchmarks/pulse_clarity.py measures music against noise.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

# Sixteen bands of 8 mel bands each (librosa's 128), and the comb over the beat lag and its multiples up to 8 (two 4/4
# bars). The lowest clip of the tuning draw (seed 2027, benchmarks/music_corpus.py) over the highest of 192 noise clips
# (white, pink, brown, under swells of 0.3, 1 and 3 s; 3-60 s): at one lag (Lartillot's maximum of the autocorrelation)
# 0.77 with estimate_tempo's 4 bands, 1.96 with 16; 4 multiples 1.40 (4 bands), 2.00 (8), 3.64 (16); 8 multiples 2.63
# (4 bands), 3.41 (8), 4.52 (16).
PULSE_BANDS = 16
PULSE_MULTIPLES = 8
# Multiples whose lag leaves less than this much overlap are not read: a z-score over one or two beats is no evidence.
PULSE_MIN_OVERLAP_SECONDS = 2.0
# The first frames hold the clip's own start (centred frames padded with zeros: an "onset" from silence), and so do
# the last; left in, that one spike dominates a short noise clip's envelope.
PULSE_EDGE_FRAMES = 16
# An STFT frame of 2048 samples spans 8 hops of 256: an envelope's neighbouring frames share most of their samples.
PULSE_SMOOTHING_FRAMES = 8


def band_envelopes(mel_db: np.ndarray, rate: int, hop_length: int) -> np.ndarray:
    """Onset strength of each of PULSE_BANDS groups of mel bands (median within the group), edges trimmed."""
    import librosa

    edges = np.linspace(0, mel_db.shape[0], PULSE_BANDS + 1).astype(int)
    bands = librosa.onset.onset_strength_multi(S=mel_db, sr=rate, hop_length=hop_length, aggregate=np.median,
                                               channels=list(edges))
    return bands[:, PULSE_EDGE_FRAMES:-PULSE_EDGE_FRAMES]


def pulse_clarity(bands: np.ndarray, frames_per_second: float, tempo_range_bpm: tuple[float, float]) -> float:
    """The strongest comb z-score over the beat lags of tempo_range_bpm; 0 when nothing in the bands moves."""
    frames = bands.shape[1]
    lags = np.arange(int(frames_per_second * 60 / tempo_range_bpm[1]),
                     int(frames_per_second * 60 / tempo_range_bpm[0]) + 1)
    # Half the clip at most: a 3.5 s click track at 60 BPM had no readable beat lag under the full 2 s.
    overlap = min(PULSE_MIN_OVERLAP_SECONDS, frames / frames_per_second / 2)
    longest_lag = frames - int(overlap * frames_per_second)
    if frames < 2 or lags[0] >= longest_lag:
        return 0.0
    # What changes slower than the fastest beat is no onset: a gain wandering with the wind (20 dB at 0.3 s) read 7.5
    # before the running mean over the shortest beat period was taken off, 3.6 after; the lowest clips of the tuning
    # and check draws rose 8-12 %, the choir clips of tests/data moved by -16 to +13 %.
    bands = bands - uniform_filter1d(bands, lags[0], axis=1, mode="nearest")
    moving = np.array([band for band in bands if band.std() > 1e-9])
    if not len(moving):
        return 0.0
    z_scores = np.array([_lag_z_scores(band) for band in moving])
    # Summed over bands, with the variance the sum has under the null: Σ_ij ρ_ij² (Bartlett's covariance of two
    # series' autocorrelations, ρ_ij their correlation at lag 0). Independent bands (noise) give the band count; bands
    # that move together (broadband clicks, rain drops) count as fewer, so coherence alone cannot fake a pulse.
    coherence = np.corrcoef(moving) if len(moving) > 1 else np.ones((1, 1))
    combined = z_scores.sum(axis=0) / np.sqrt(np.sum(coherence ** 2))
    multiples = np.arange(1, PULSE_MULTIPLES + 1)
    comb_lags = lags[:, None] * multiples[None, :]
    readable = comb_lags < longest_lag
    summed = np.where(readable, combined[np.minimum(comb_lags, frames - 1)], 0.0).sum(axis=1)
    counts = readable.sum(axis=1)
    scores = np.where(counts > 0, summed / np.sqrt(np.maximum(counts, 1)), 0.0)
    return float(max(scores.max(), 0.0))


def _lag_z_scores(envelope: np.ndarray) -> np.ndarray:
    """Each lag's unbiased autocorrelation × √(overlap) / Bartlett's factor: a z-score if the envelope held no period.

    Bartlett's factor √(1 + 2 Σ ρ(v)², v ≤ PULSE_SMOOTHING_FRAMES) accounts for the envelope's own smoothness (the mel
    frames overlap 8-fold): a smooth random envelope wanders further than a white one."""
    centred = envelope - envelope.mean()
    frames = centred.size
    power = np.fft.irfft(np.abs(np.fft.rfft(centred, 2 * frames)) ** 2)[:frames]
    overlap = frames - np.arange(frames)
    correlation = (power / overlap) / (power[0] / frames)
    bartlett = 1 + 2 * np.sum(correlation[1:PULSE_SMOOTHING_FRAMES + 1] ** 2)
    return correlation * np.sqrt(overlap / bartlett)
