"""Audio → musical features, with librosa: cheap, robust cues only (no HPSS, no pyin in the batch path).

Each cue is one the music–emotion literature uses (Eerola, Friberg & Bresin 2013, "Emotional expression in music:
contribution, linearity, and additivity of primary musical cues", Frontiers in Psychology 4:487): mode, tempo,
register/brightness, loudness and articulation (here: onset density).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .pulse import band_envelopes, pulse_clarity

SAMPLE_RATE = 22050
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Albrecht & Shanahan (2013, "The use of large corpora to train a new type of key-finding algorithm", Music
# Perception 31:59) key profiles: index 0 is the tonic. On our evaluation set (benchmarks/music_accuracy.py) they beat
# Krumhansl & Kessler's (1982), Temperley's (2007), Bellman–Budge's and Sha'ath's; Krumhansl–Kessler put a third of
# the keys a fifth too high. Aarden's (Essen) profiles did as well (seed 2028) or better (seed 2027: 1 key and 3 modes
# more), but the set's modes are labelled by music21's analysis with those very profiles: their lead is partly the
# labelling's.
MAJOR_PROFILE = np.array([0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081])
MINOR_PROFILE = np.array([0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052])
# Symbolic profiles count notes; a chroma of audio also holds each note's overtones (the 3rd partial is a fifth up,
# the 5th a major third up), which is what pulled keys a fifth up. So each profile is compared with the chroma the
# notes would make: every pitch class adds its first HARMONICS partials, the h-th weighted HARMONIC_DECAY^(h-1)
# (Gómez 2006, "Tonal description of music audio signals", PhD thesis, UPF, §3.3 — the templates of essentia's HPCP).
HARMONICS = 6
HARMONIC_DECAY = 0.6
CHROMA_BINS_PER_OCTAVE = 36  # chroma_cqt's default: three CQT bins per pitch class


def _with_overtones(profile: np.ndarray) -> np.ndarray:
    heard = np.zeros(12)
    for h in range(1, HARMONICS + 1):
        heard += HARMONIC_DECAY ** (h - 1) * np.roll(profile, round(12 * math.log2(h)) % 12)
    return heard


MAJOR_TEMPLATE, MINOR_TEMPLATE = _with_overtones(MAJOR_PROFILE), _with_overtones(MINOR_PROFILE)
# Tempo: onset strength aggregated over frequency by the median (as librosa's beat_track(y=...) does; the mean let
# sustained harmonics double slow tempi), at a 256-sample hop (512 quantised 150 BPM in 8-BPM steps).
TEMPO_HOP = 256
# The metrical level (the "family" of tempi related by ×2) is found first, the octave within it second. The
# autocorrelation tempogram peaks at multiples of the period (subharmonics: 2 and 4 beats), the Fourier tempogram at
# multiples of the frequency (harmonics: ×2, ×3, ×4) (Müller 2015, "Fundamentals of Music Processing", §6.2; Grosche
# & Müller 2011, "Extracting predominant local pulse information from music recordings", IEEE TASLP 19:1688); their
# product keeps the tempi both agree on (Peeters 2005, "Time variable tempo detection and beat marking", ICMC). Alone,
# the autocorrelation put slow-attack choir and flute sounds at ⅔ or 4/3 of the beat. Both are averaged over four
# frequency bands (Scheirer 1998, "Tempo and beat analysis of acoustic musical signals", JASA 103:588; Klapuri,
# Eronen & Astola 2006, "Analysis of the meter of acoustic musical signals", IEEE TASLP 14:342), each band's envelope
# scaled to unit deviation, so that one sustained or noisy band cannot drown the others: librosa's 128 mel bands
# split at about 620, 1280 and 3000 Hz.
TEMPO_BAND_EDGES = (0, 24, 48, 80, 128)
TEMPO_WINDOW = 384  # tempogram window in envelope frames (librosa's default: 4.5 s here), shorter only for short clips
TEMPO_GRID_BPM = np.geomspace(30.0, 320.0, 800)  # where the tempograms are compared (0.3 % steps)
TEMPO_RANGE_BPM = (40.0, 250.0)  # a beat outside this is a bar or a subdivision, not a beat
# A level is scored by its own agreement plus that at ×½ and ×2 (the half bar and the subdivision): a beat has a
# metrical structure around it, an artefact at ×4/3 or ×3/2 seldom does (the hierarchy of Klapuri et al. 2006).
TEMPO_METRICAL_LEVELS = (0.5, 1.0, 2.0)
# Within the level's octaves, the autocorrelation of the median envelope weighted by a log-normal prior picks the
# beat. 100 BPM ± 1 octave was the best of the priors tried on the tuning draw of the evaluation set (seed 2027,
# tempo within 4 %: 120 ± 1 (librosa's default) 0.872, 110 ± 1.5 0.907, 100 ± 1 0.942, 95 ± 0.7 0.849, 95 ± 0.5
# 0.779); it is near the middle of the set's tempi (58–154 quarter notes per minute).
TEMPO_PRIOR_BPM = 100.0
TEMPO_PRIOR_OCTAVES = 1.0
# The beat tracker's tightness when it refines the chosen tempo: high, so that it keeps to that tempo (librosa's
# default, 100, gave 0.930 / 0.897 within 4 % on draws 2027 / 2028 against 0.942 / 0.897: benchmarks/tempo_octave.py).
BEAT_TIGHTNESS = 400

# Float audio may pass full scale (1.0) a little, left unlimited after processing; a thousand times over (+60 dBFS) it
# is not audio in -1..1 but integer PCM stored as floats, or garbage: 1e30 overflowed the RMS to inf and crashed.
MAX_PEAK = 1000.0
SILENCE_DBFS = -60.0  # a clip whose loudest frame is quieter than this is silence, not music
MIN_TEMPO_SECONDS = 3.0  # shorter than this, a tempo estimate is a guess: reported as null
# One onset is no pulse to measure: a single click read 80.7 BPM, a steady tone after silence 40.5 BPM; reported as
# null. Not more: choir sounds swell in so slowly that onset_detect found 3 onsets in 27 s of a chorale whose tempo
# the tempograms read right (a floor of 4 cost the reported draw that clip).
MIN_TEMPO_ONSETS = 2
# Onsets are no pulse either: onset_detect finds 3-4 a second in white noise, and the beat tracker read a tempo (81
# BPM) into it, with a beat strength (4.0-4.9) inside the music's. So a tempo needs a pulse clarity (pulse.py: a comb
# z-score of 16 band envelopes' autocorrelation, after Lartillot et al. 2008) of MIN_PULSE_CLARITY.
# `python benchmarks/pulse_clarity.py --seed 2027 --seed 2028`: numpy noise (30 seeds at 3, 5 and 10 s, 7 at 30 s)
# reached 4.1 white, 3.4 pink and brown, 3.7-3.9 under gains wandering at 0.3-3 s (wind, rain), 5.8 as Poisson
# clicks (drops); music at least 18.5 on the tuning draw (seed 2027, whole clips), 15.2 on the check draw (2028), 8.7
# on the 15 s choir clips of tests/data. 7 sits 1.26x above the drops and 1.25x below that choir clip (1.7x above
# the other noise, 2.2x below the lowest whole clip). Openings of 5 s fall below it (clips of 2027: 8 of 86).
# A ringing chord's partials beat (C4's 3rd partial against G5: 0.9 Hz), which the bands read as a pulse; its median
# onset envelope is flat, which estimate_tempo reads as no pulse.
MIN_PULSE_CLARITY = 7.0
# Key strength (Temperley's term): the best profile correlation. Below MIN_KEY_STRENGTH there is no key to speak of
# (noise, clusters, percussion: 0.2–0.4 in our synthetic checks; diatonic progressions 0.7–0.95), so the mode
# confidence is 0. Above it, the confidence is the margin between the best major and best minor fit; below
# CLEAR_MODE_MARGIN the mode is called ambiguous (neutral wording in the prompts). Minor progressions with a
# harmonic-minor V measured margins of 0.06–0.14 (their relative major fits nearly as well), major ones 0.3–0.4.
MIN_KEY_STRENGTH = 0.5
CLEAR_MODE_MARGIN = 0.05
# A key needs at least a triad's worth of pitch classes: a drone, a single tone or a bare fifth correlates with some
# profile (a sine at A4 scored 0.62, "D minor") but has no mode. Counted as the chroma's effective number of pitch
# classes, exp(entropy) of the clip's mean chroma (Hill's diversity of order 1): 1.2 for that sine, 10–11 for the
# rendered chorales of tests/data (chroma_cqt spreads every note over its neighbours).
MIN_PITCH_CLASSES = 3.0
# Nor is a flat chroma a key: white noise's mean chroma is even to within ±3 %, and its correlation with the
# profiles (random wiggles) reached 0.59-0.76 in 1 of 3 clips, with a mode margin up to 0.19. Its effective count
# is 11.95-11.97 (pink 11.85-11.95, brown 11.6-11.8, from 1 to 30 s), music's at most 11.50 on the tuning and check
# draws (173 clips, seeds 2027 and 2028; median 10.4). Above MAX_PITCH_CLASSES the clip has no key: 12 minus it,
# the chroma's contrast, is then 0.25, half music's least (0.50) and 1.7x white and pink noise's most (0.15).
MAX_PITCH_CLASSES = 11.75
# On a short clip the constant-Q chroma smears: its low octaves' filters are longer than the clip (padded), and the
# sine at A4 counts 3.1 pitch classes at 0.5 s, 5.1 at 0.2 s (2.5 at 0.8 s, 1.8 at 1.5 s): a clear mode again. A
# short-time Fourier chroma (4096 samples, 186 ms) does not smear with length (the sine: 2.1-2.3 from 0.2 to 3 s, a
# harmonic A: 2.4-2.6) but smears low notes over their neighbours (5.4 Hz bins for a 6.5 Hz semitone at A2). Each
# only over-counts, so the count is the smaller of the two. On A440's grid (tuning=0): a tuning off the grid spreads
# notes, and the CQT's count (tuned) is then the smaller; librosa's own estimate warns on noise without peaks. Frames
# overlap by half, not three quarters: a mean profile needs no finer hop, and it halves the cost (0.06 s a minute).
PITCH_COUNT_FFT = 4096


class AudioProblem(Exception):
    """A file that cannot become a sample (unreadable, silent, empty): reported as a skipped sample."""


@dataclass(frozen=True)
class MusicalFeatures:
    duration_seconds: float
    tempo: float | None  # beats per minute; None when the clip is too short to tell or has no clear pulse
    beat_strength: float | None  # mean onset strength on beats / mean onset strength (1 = no pulse)
    key: str  # tonic, e.g. "A"
    tonality: str  # "major" or "minor" (the better-fitting profile)
    mode_confidence: float  # correlation margin between the best major and best minor key (0 without a key)
    key_strength: float  # the best key-profile correlation, -1..1
    loudness_dbfs: float  # median frame RMS, dB relative to full scale
    dynamic_range_db: float  # 95th − 10th percentile of frame RMS in dB
    brightness_hz: float  # mean spectral centroid
    onset_rate: float  # onsets per second

    @property
    def mode_is_clear(self) -> bool:
        return self.mode_confidence >= CLEAR_MODE_MARGIN

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def analyse(audio: np.ndarray, rate: int = SAMPLE_RATE) -> MusicalFeatures:
    """The features of one clip. Raises AudioProblem for empty, non-finite or silent audio.

    Computed with one BLAS thread, whatever the process has: a threaded matrix product sums in another order, and the
    features moved in their last bits with the thread count (beat strength on 5 of 26 clips of the tuning draw, one
    thread against two to eight). Worker processes run one thread (analysis.py) and this process as many as it has,
    so `--jobs 1` and `--jobs 2` could write other prompts; and a cache filled by one is read by the other. One thread
    cost no measurable time (8 clips, 223 s of music: 6.2-7.7 s either way on the 2-core Xeon; BLAS is a small part
    of the work)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _analyse(audio, rate)


def _analyse(audio: np.ndarray, rate: int) -> MusicalFeatures:
    import librosa

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(audio)):  # before resampling, which refuses such audio with a ParameterError
        raise AudioProblem("the audio holds NaN or infinite samples")
    if rate != SAMPLE_RATE and audio.size:
        # The offset goes before resampling too: the resampler's filter rings at the ends of a constant, and an
        # offset alone (a silent file from a cheap recorder) at 16 or 44.1 kHz read as -50 to -56 dBFS of sound with
        # a key ("C minor", a clear mode at 16 kHz) instead of silence. (At 22.05 kHz nothing is resampled.)
        audio = audio - audio.mean(dtype=np.float64).astype(np.float32)
        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    if audio.size < SAMPLE_RATE // 10:
        raise AudioProblem(f"too short to analyse ({audio.size / SAMPLE_RATE:.2f} s; at least 0.1 s)")
    peak = float(np.max(np.abs(audio)))
    if peak > MAX_PEAK:
        raise AudioProblem(f"samples reach {peak:.3g}, far outside -1..1 (+{20 * math.log10(peak):.0f} dBFS): not "
                           "audio scaled as floats (integer samples must be divided by their full scale, "
                           "e.g. 32768)")
    # A DC offset (a cheap recorder's, a bad conversion's) is no sound: left in, it reads as level (an offset alone
    # was "music", not silence), its 0 Hz bin darkens the spectral centroid (a sine at A4 under an offset of 1.5×
    # its amplitude: 148 Hz), and a large one leaks into the lowest CQT bins of every pitch class (a sine's
    # effective pitch classes 1.3 → 9: a clear mode again).
    audio = audio - audio.mean(dtype=np.float64).astype(np.float32)
    duration = audio.size / SAMPLE_RATE

    rms = librosa.feature.rms(y=audio)[0]
    rms_db = 20 * np.log10(np.maximum(rms, 1e-10))
    if rms_db.max() < SILENCE_DBFS:
        raise AudioProblem(f"silent (loudest frame {rms_db.max():.0f} dBFS)")
    sounding = rms_db[rms_db > rms_db.max() - 50]  # ignore the fade-in/out and gaps when judging level
    loudness = float(np.median(sounding))
    dynamic_range = float(np.percentile(sounding, 95) - np.percentile(sounding, 10))

    centroid = librosa.feature.spectral_centroid(y=audio, sr=SAMPLE_RATE)[0]
    brightness = float(np.mean(centroid[rms_db > rms_db.max() - 50]))

    onset_envelope = librosa.onset.onset_strength(y=audio, sr=SAMPLE_RATE)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=SAMPLE_RATE)
    onset_rate = len(onsets) / duration

    tempo = beat_strength = None
    if duration >= MIN_TEMPO_SECONDS and len(onsets) >= MIN_TEMPO_ONSETS:
        tempo, beat_strength = estimate_tempo(audio)

    with warnings.catch_warnings():
        # The constant-Q transform halves the sample rate per octave: in a clip under ~1.5 s its lowest octaves are
        # shorter than one FFT frame, and librosa warns (3-5 times per clip) before padding them. Nothing is wrong
        # with the clip, and the user can do nothing about it: not a warning for them.
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large", category=UserWarning)
        chroma = tuned_chroma(audio)
    n_fft = min(PITCH_COUNT_FFT, 2 ** int(math.log2(audio.size)))
    pitch_classes = min(effective_pitch_classes(chroma),
                        effective_pitch_classes(librosa.feature.chroma_stft(y=audio, sr=SAMPLE_RATE, n_fft=n_fft,
                                                                              hop_length=n_fft // 2, tuning=0.0)))
    key, tonality, confidence, strength = estimate_key(chroma, pitch_classes)
    return MusicalFeatures(
        duration_seconds=duration,
        tempo=tempo,
        beat_strength=beat_strength,
        key=key,
        tonality=tonality,
        mode_confidence=confidence,
        key_strength=strength,
        loudness_dbfs=loudness,
        dynamic_range_db=dynamic_range,
        brightness_hz=brightness,
        onset_rate=onset_rate,
    )


def estimate_tempo(audio: np.ndarray) -> tuple[float | None, float | None]:
    """(beats per minute, beat strength), or (None, None) without a clear pulse (pulse.py). The metrical level comes
    from band-wise autocorrelation × Fourier tempograms summed over ×½, ×1, ×2; the octave within it from the
    autocorrelation and a prior; the period is then refined by a line through the tracked beats, finer than one
    autocorrelation lag."""
    _, candidates = tempo_inputs(audio)
    if candidates is None:
        return None, None
    envelope, octaves, autocorrelation = candidates
    tempo, beats = refined_tempo(envelope, max(octaves, key=lambda bpm: octave_salience(autocorrelation, bpm)))
    beat_strength = None
    if len(beats) and envelope.mean() > 0:
        beat_strength = float(envelope[beats].mean() / envelope.mean())
    return float(tempo), beat_strength


def _autocorrelation_salience(envelope: np.ndarray) -> np.ndarray:
    """librosa's autocorrelation tempogram, averaged over time, on TEMPO_GRID_BPM."""
    import librosa

    window = min(TEMPO_WINDOW, envelope.size)
    lags = librosa.feature.tempogram(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=TEMPO_HOP,
                                     win_length=window).mean(axis=1)
    bpm = librosa.tempo_frequencies(window, sr=SAMPLE_RATE, hop_length=TEMPO_HOP)[1:]  # lag 0 is infinite
    return np.interp(np.log(TEMPO_GRID_BPM), np.log(bpm[::-1]), lags[1:][::-1])


def _fourier_salience(envelope: np.ndarray) -> np.ndarray:
    """librosa's Fourier tempogram magnitude, averaged over time, on TEMPO_GRID_BPM."""
    import librosa

    window = min(TEMPO_WINDOW, envelope.size)
    spectrum = np.abs(librosa.feature.fourier_tempogram(onset_envelope=envelope, sr=SAMPLE_RATE,
                                                        hop_length=TEMPO_HOP, win_length=window)).mean(axis=1)
    frequencies = librosa.fourier_tempo_frequencies(sr=SAMPLE_RATE, hop_length=TEMPO_HOP, win_length=window)
    return np.interp(TEMPO_GRID_BPM, frequencies, spectrum)


def tempo_inputs(audio: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, list[float], np.ndarray] | None]:
    """(mel spectrogram in dB at TEMPO_HOP, tempo_candidates of it), the candidates None without a clear pulse
    (pulse.py) or without any onset."""
    import librosa

    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=TEMPO_HOP))
    clarity = pulse_clarity(band_envelopes(mel_db, SAMPLE_RATE, TEMPO_HOP), SAMPLE_RATE / TEMPO_HOP, TEMPO_RANGE_BPM)
    return mel_db, (tempo_candidates(mel_db) if clarity >= MIN_PULSE_CLARITY else None)


def refined_tempo(envelope: np.ndarray, bpm: float, tightness: float = BEAT_TIGHTNESS) -> tuple[float, np.ndarray]:
    """(the tempo near `bpm` to a fraction of a lag, the beats tracked there): a line through the beats the tracker
    finds at `bpm`, finer than one autocorrelation lag; `bpm` itself when fewer than four beats are found."""
    import librosa

    _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=TEMPO_HOP, bpm=bpm,
                                       tightness=tightness)
    if len(beats) >= 4:
        frames_per_beat = np.polyfit(np.arange(len(beats)), beats, 1)[0]
        if frames_per_beat > 0:
            return 60.0 * SAMPLE_RATE / TEMPO_HOP / frames_per_beat, beats
    return bpm, beats


def tempo_candidates(mel_db: np.ndarray) -> tuple[np.ndarray, list[float], np.ndarray] | None:
    """(median onset envelope, the beat's candidate octaves in BPM, that envelope's autocorrelation salience on
    TEMPO_GRID_BPM), or None without any onset. The candidates are one metrical level: the tempo whose ×½, ×1, ×2 the
    band-wise autocorrelation × Fourier tempograms agree on most, and its octaves within TEMPO_RANGE_BPM."""
    import librosa

    envelope = librosa.onset.onset_strength(S=mel_db, sr=SAMPLE_RATE, hop_length=TEMPO_HOP, aggregate=np.median)
    if not np.any(envelope > 0):
        return None
    autocorrelation = np.zeros_like(TEMPO_GRID_BPM)
    fourier = np.zeros_like(TEMPO_GRID_BPM)
    for band in librosa.onset.onset_strength_multi(S=mel_db, sr=SAMPLE_RATE, hop_length=TEMPO_HOP,
                                                   aggregate=np.median, channels=list(TEMPO_BAND_EDGES)):
        if band.std() > 0:
            autocorrelation += _autocorrelation_salience(band / band.std())
            fourier += _fourier_salience(band / band.std())
    agreement = autocorrelation * fourier
    if not np.any(agreement > 0):
        return None
    log_grid = np.log(TEMPO_GRID_BPM)
    inside = (TEMPO_GRID_BPM >= TEMPO_RANGE_BPM[0]) & (TEMPO_GRID_BPM <= TEMPO_RANGE_BPM[1])
    candidates = TEMPO_GRID_BPM[inside]
    level = sum(np.interp(np.log(candidates * k), log_grid, agreement, left=0, right=0)
                for k in TEMPO_METRICAL_LEVELS)
    best = candidates[np.argmax(level)]
    octaves = [float(best * 2.0**k) for k in range(-3, 4)
               if TEMPO_RANGE_BPM[0] <= best * 2.0**k <= TEMPO_RANGE_BPM[1]]
    return envelope, octaves, _autocorrelation_salience(envelope)


def octave_salience(autocorrelation: np.ndarray, bpm: float) -> float:
    """How strongly the median envelope's autocorrelation, weighted by the tempo prior, says `bpm` is the beat: the
    octave with the most is the tempo."""
    return float(np.interp(math.log(bpm), np.log(TEMPO_GRID_BPM), autocorrelation)) * tempo_prior(bpm)


def tempo_prior(bpm: float) -> float:
    """The log-normal prior over beats: TEMPO_PRIOR_BPM ± TEMPO_PRIOR_OCTAVES, 1 at its centre."""
    return math.exp(-0.5 * (math.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)


def effective_pitch_classes(chroma: np.ndarray) -> float:
    """exp(entropy) of the clip's mean chroma (Hill's diversity of order 1): 1 for one pitch class, 12 for all alike."""
    profile = chroma.mean(axis=1)
    if not np.any(profile > 0):
        return 0.0
    share = profile / profile.sum()
    return float(np.exp(-np.sum(share * np.log(np.where(share > 0, share, 1.0)))))


def estimate_key(chroma: np.ndarray, pitch_classes: float) -> tuple[str, str, float, float]:
    """Krumhansl–Schmuckler's method with Albrecht–Shanahan profiles heard with their overtones: correlate the clip's
    mean chroma with the 24 rotated templates.

    Returns (tonic, "major"/"minor", mode confidence, key strength): the confidence is how much better the best key
    of the winning mode fits than the best key of the other mode (0 when the key strength is too low to mean anything,
    or the clip sounds fewer than MIN_PITCH_CLASSES or more than MAX_PITCH_CLASSES `pitch_classes`, as analyse
    counts them).
    """
    profile = chroma.mean(axis=1)
    if not np.any(profile > 0) or np.allclose(profile, profile[0]):
        return "C", "major", 0.0, 0.0

    def fits(template: np.ndarray) -> np.ndarray:
        return np.array([np.corrcoef(profile, np.roll(template, tonic))[0, 1] for tonic in range(12)])

    major, minor = fits(MAJOR_TEMPLATE), fits(MINOR_TEMPLATE)
    strength = float(max(major.max(), minor.max()))
    has_key = strength >= MIN_KEY_STRENGTH and MIN_PITCH_CLASSES <= pitch_classes <= MAX_PITCH_CLASSES
    margin = float(abs(major.max() - minor.max())) if has_key else 0.0
    if major.max() >= minor.max():
        return NOTE_NAMES[int(major.argmax())], "major", margin, strength
    return NOTE_NAMES[int(minor.argmax())], "minor", margin, strength


def estimate_tuning(audio: np.ndarray) -> float:
    """How far the music sits from A440's semitone grid, in semitones (−0.5…0.5).

    chroma_cqt estimates the tuning itself, but in fractions of one of its CQT bins (a third of a semitone), so a
    deviation beyond ±16.7 cents is read modulo a third of a semitone: FluidR3's choir, sung about 15–20 cents flat
    with vibrato, was read 13 cents sharp, its notes smeared over neighbouring pitch classes, and half the choir clips
    of the tuning set got a wrong key. librosa.estimate_tuning at one bin per semitone has the range but takes the
    mode of a histogram, which vibrato (a sine spends its time at its extremes) pulls to one extreme (−41 cents for
    −20 ± 25). So: the same spectral peaks (piptrack, the louder half, as estimate_tuning takes), and their circular
    mean deviation from the grid, the estimator of Mauch & Dixon's NNLS chroma (2010, "Approximate note transcription
    for the improved identification of difficult chords", ISMIR), which averages the phase over a semitone's period.
    """
    import librosa

    pitches, magnitudes = librosa.piptrack(y=audio, sr=SAMPLE_RATE)
    found = pitches > 0
    if not found.any():
        return 0.0
    strong = found & (magnitudes >= np.median(magnitudes[found]))
    semitones = 12 * np.log2(pitches[strong] / 440.0)
    return float(np.angle(np.mean(np.exp(2j * np.pi * semitones))) / (2 * np.pi))


def tuned_chroma(audio: np.ndarray) -> np.ndarray:
    """chroma_cqt on a semitone grid that follows the music's tuning (estimate_tuning), handed over in CQT bins."""
    import librosa

    return librosa.feature.chroma_cqt(y=audio, sr=SAMPLE_RATE, bins_per_octave=CHROMA_BINS_PER_OCTAVE,
                                      tuning=estimate_tuning(audio) * CHROMA_BINS_PER_OCTAVE / 12)
