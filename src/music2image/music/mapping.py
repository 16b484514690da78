"""Musical features → emotion → visual descriptors, sampled at a temperature that means something.

1. Cues → emotion. Arousal and valence are weighted sums of normalised cues, with the cue order Eerola, Friberg &
   Bresin (2013, Frontiers in Psychology 4:487) measured: mode weighs most for valence, then tempo, then
   register/brightness, then loudness; arousal rests on tempo, loudness, articulation (onset density) and timbre.
   Mode counts only as far as the key finder is confident (an ambiguous mode moves valence little).
2. Emotion → colour. Palmer, Schloss, Xu & Prado-León (2013, PNAS 110:8836) found that people match faster music
   in major keys with lighter, more saturated, yellower (warmer) colours, and slower minor music with darker,
   desaturated, bluer ones, and that emotion mediates the match. So palette lightness/saturation/warmth follow
   valence and arousal, and two sound cues directly, as crossmodal correspondences tie them: brightness → lightness,
   loudness → saturation (PALETTE_WEIGHTS), so that music of one mood but another sound gets another palette.
3. Descriptors. Every slot (subject, palette, light, motion, texture, composition, medium, mood) holds phrases placed
   in that space (vocabulary.py); subjects also by elevation, which follows brightness, so that music of one mood
   still gets scenes that differ with its sound. A phrase's score is its closeness to the clip's target. Sampling
   is a softmax over scores at the prompt's temperature: T → 0 always picks the best match, 0.4 stays near it
   (convergent), 0.8 wanders (divergent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .features import MusicalFeatures
from .vocabulary import EMOTION_SLOTS, PALETTES


def _clip(value: float) -> float:
    return max(-1.0, min(1.0, value))


@dataclass(frozen=True)
class Emotion:
    valence: float  # -1 (sad, dark) .. 1 (happy, bright)
    arousal: float  # -1 (calm) .. 1 (energetic)
    lightness: float  # 0..1, palette targets (Palmer et al. 2013)
    saturation: float
    warmth: float  # 0 blue .. 1 yellow/orange
    elevation: float = 0.0  # -1 the depths .. 1 the sky: where the subject's scene lies (vocabulary.SUBJECT_SCENES)

    def as_dict(self) -> dict:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def cues(features: MusicalFeatures) -> dict[str, float]:
    """Each cue scaled to -1..1 around a typical popular-music value (the ranges cover most commercial recordings)."""
    # Tempo on a log scale (60 → -0.7, 100 → 0, 165 → +0.7 BPM): a tempo read an octave off (a slow piece's eighth
    # notes taken for its beat, the commonest error of beat trackers) then moves the cue by 1 at most, not 2.
    tempo = 0.0 if features.tempo is None else _clip(math.log2(features.tempo / 100.0) / 1.0)
    mode_sign = 1.0 if features.tonality == "major" else -1.0
    # A margin of 0.1 or more counts fully; below CLEAR_MODE_MARGIN (0.05) the mode moves valence by less than half.
    mode = mode_sign * min(1.0, features.mode_confidence / 0.1)
    return {
        "tempo": tempo,
        "mode": mode,
        "loudness": _clip((features.loudness_dbfs + 25.0) / 15.0),  # -40 → -1, -10 dBFS → +1
        "brightness": _clip((features.brightness_hz - 2000.0) / 1500.0),  # 500 → -1, 3500 Hz → +1
        "onsets": _clip((features.onset_rate - 2.5) / 2.5) if has_notes(features) else 0.0,  # 0 → -1, 5/s → +1
    }


def has_notes(features: MusicalFeatures) -> bool:
    """Whether the clip's onsets are notes: it has a pulse (a tempo) or a key. Onset density stands for articulation,
    how many notes a second (Eerola et al. 2013); onset_detect also finds 1-4 a second in white and pink noise (rain,
    wind, hiss), which has neither, and those made noise 'energetic'. Without notes the cue is neutral."""
    return features.tempo is not None or features.mode_confidence > 0


TEMPO_AROUSAL_WEIGHT = 0.25


def emotion_of(features: MusicalFeatures) -> Emotion:
    c = cues(features)
    # Weights in Eerola et al.'s order of cue importance (mode > tempo > register > loudness for valence). Tempo's
    # weight for arousal is shared with onset density (how many events a second, which has no octave to get wrong),
    # so that a doubled tempo alone moves arousal by at most TEMPO_AROUSAL_WEIGHT: calm music stays calm.
    valence = _clip(0.55 * c["mode"] + 0.2 * c["tempo"] + 0.15 * c["brightness"] + 0.1 * c["loudness"])
    arousal = _clip(TEMPO_AROUSAL_WEIGHT * c["tempo"] + 0.3 * c["onsets"] + 0.25 * c["loudness"]
                    + 0.2 * c["brightness"])
    lightness, saturation, warmth = 0.5 + PALETTE_WEIGHTS @ np.array([valence, arousal, c["brightness"], c["loudness"]])
    return Emotion(
        valence=valence,
        arousal=arousal,
        lightness=float(lightness),
        saturation=float(saturation),
        warmth=float(warmth),
        elevation=c["brightness"],  # pitch height → height in space (Parise et al. 2014; vocabulary.py)
    )


# The palette's target: lightness, saturation, warmth (rows) from valence, arousal, brightness, loudness (columns).
# Emotion mediates the match (Palmer et al. 2013): happier → lighter and yellower, more aroused → more saturated.
# With emotion alone the targets of music of one mode lay on one line (valence and arousal share tempo and
# brightness): on the tuning draw (seed 2027) minor clips' targets spread by 0.05 in lightness and one palette took
# two thirds of their prompts. So two sound cues also act directly, each on the colour dimension the crossmodal
# literature ties it to most: timbral brightness → lightness (pitch and brightness match lighter colours: Marks 1987,
# J Exp Psychol HPP 13:384; review Spence 2011, Atten Percept Psychophys 73:971), loudness → saturation (louder tones
# match more chromatic colours at equal lightness: Hamilton-Fletcher, Witzel, Reby & Ward 2017, Multisensory Research
# 30:337). Music of one mood but a darker or brighter, softer or louder sound then gets another palette.
# The emotion columns are the weights used before (chosen by hand after Palmer et al.'s direction of effects); the cue
# columns were chosen on the tuning draw (2027): 0.2 × the brightness cue spans 0.17 of lightness between the 10th and
# 90th percentile of its clips' timbres, about two steps between the dark palettes (vocabulary.PALETTES).
PALETTE_WEIGHTS = np.array([
    # valence, arousal, brightness, loudness
    [0.30, 0.10, 0.20, 0.00],  # lightness
    [0.15, 0.30, 0.00, 0.15],  # saturation
    [0.30, 0.15, 0.00, 0.00],  # warmth
])


SLOT_ORDER = ("subject", "mood", "palette", "light", "motion", "texture", "composition", "medium")
# The similarity kernel's width (in unit-scaled space) is KERNEL_WIDTH × temperature: 0.06 at T=0.4, where a phrase
# one grid step (0.15) farther than the best match is 20× less likely, so convergent prompts keep the best phrase in
# most slots; 0.12 at T=0.8, where it is only 2× less likely, so divergent prompts wander. (A width fixed and the
# logits divided by T, as before, left a third of convergent slots off the best phrase.)
KERNEL_WIDTH = 0.15
# Palettes lie closer together (about 0.1 apart where music lands, so that music of one mood has several to choose
# from), so their kernel is narrower in proportion: a palette one step farther than the best is again 20× less likely
# at T=0.4. At the emotion slots' width, convergent prompts kept the best palette in 0.53 of them (0.78 at this one),
# and all their slots fell to 0.799 at the best phrase (tuning draw 2027; goal ≥ 0.80).
PALETTE_KERNEL_WIDTH = 0.10


def scores(slot: str, emotion: Emotion) -> tuple[list[str], np.ndarray]:
    """Each phrase of a slot and its score (0 = on target; more negative = farther away)."""
    if slot == "palette":
        target = np.array([emotion.lightness, emotion.saturation, emotion.warmth])
        phrases = list(PALETTES)
        points = np.array([PALETTES[p] for p in phrases])
    else:  # (valence, arousal), and for subjects elevation too, from -1..1 to the palette's unit scale
        phrases = list(EMOTION_SLOTS[slot])
        points = np.array([EMOTION_SLOTS[slot][p] for p in phrases]) / 2
        target = np.array([emotion.valence, emotion.arousal, emotion.elevation][: points.shape[1]]) / 2
    distance2 = ((points - target) ** 2).sum(axis=1)
    width = PALETTE_KERNEL_WIDTH if slot == "palette" else KERNEL_WIDTH
    return phrases, -distance2 / (2 * width**2)


def choose(phrases: list[str], score: np.ndarray, temperature: float, rng: np.random.Generator) -> str:
    """Softmax sampling at `temperature` (the kernel's width grows with it); at 0 (or nearly), the best match."""
    if temperature <= 1e-6:
        return phrases[int(np.argmax(score))]
    logits = score / temperature**2
    weights = np.exp(logits - logits.max())
    return phrases[int(rng.choice(len(phrases), p=weights / weights.sum()))]


# With an ambiguous mode the clip's valence is uncertain: its mood word comes from the neutral middle only.
NEUTRAL_MOOD_VALENCE = 0.3


def descriptors(emotion: Emotion, temperature: float, rng: np.random.Generator,
                neutral_mood: bool = False) -> dict[str, str]:
    """One phrase per slot, in SLOT_ORDER."""
    chosen = {}
    for slot in SLOT_ORDER:
        phrases, score = _slot_scores(slot, emotion, neutral_mood)
        chosen[slot] = choose(phrases, score, temperature, rng)
    return chosen


def _slot_scores(slot: str, emotion: Emotion, neutral_mood: bool) -> tuple[list[str], np.ndarray]:
    phrases, score = scores(slot, emotion)
    if slot == "mood" and neutral_mood:
        keep = [i for i, p in enumerate(phrases) if abs(EMOTION_SLOTS["mood"][p][0]) <= NEUTRAL_MOOD_VALENCE]
        phrases, score = [phrases[i] for i in keep], score[keep]
    return phrases, score


def best_descriptors(emotion: Emotion, neutral_mood: bool) -> dict[str, str]:
    """The best-scoring phrase of every slot: what a convergent prompt at temperature 0 holds."""
    best = {}
    for slot in SLOT_ORDER:
        phrases, score = _slot_scores(slot, emotion, neutral_mood)
        best[slot] = phrases[int(np.argmax(score))]
    return best


def descriptor_distance(descriptor_sets: list[dict[str, str]]) -> float:
    """The mean share of slots in which two of the sets differ, over all pairs (0: all equal, 1: nothing shared; 0
    for fewer than two sets, which have no pair to differ)."""
    pairs = list(combinations(descriptor_sets, 2))
    if not pairs:
        return 0.0
    return float(np.mean([sum(a[s] != b[s] for s in SLOT_ORDER) / len(SLOT_ORDER) for a, b in pairs]))


NEAREST_ALTERNATIVES = 3


def distinct_descriptors(emotion: Emotion, temperatures: list[float], rngs: list[np.random.Generator],
                         neutral_mood: bool = False, redraws: int = 20) -> list[dict[str, str]]:
    """One descriptor set per prompt of a sample, none equal to an earlier one (a sample whose prompts repeat makes
    images that differ by seed alone). A repeat is drawn again from its own generator; if `redraws` draws all repeat,
    the slot whose next-best phrase is closest to the target moves to it. At temperature 0 every prompt is the best
    match by definition, so repeats are kept there."""
    chosen: list[dict[str, str]] = []
    for temperature, rng in zip(temperatures, rngs):
        pick = descriptors(emotion, temperature, rng, neutral_mood)
        for _ in range(redraws):
            if temperature <= 1e-6 or pick not in chosen:
                break
            pick = descriptors(emotion, temperature, rng, neutral_mood)
        if temperature > 1e-6 and pick in chosen:
            pick = _nearest_unused(emotion, pick, chosen, neutral_mood)
        chosen.append(pick)
    return chosen


def _nearest_unused(emotion: Emotion, pick: dict[str, str], chosen: list[dict[str, str]],
                    neutral_mood: bool) -> dict[str, str]:
    """The descriptor set nearest `pick` that no earlier prompt has: one or two slots moved to one of their next
    NEAREST_ALTERNATIVES phrases, preferring phrases the sample already uses (so that a sample at a low temperature
    stays as uniform as distinct prompts allow), then the smallest loss of score."""
    alternatives = {}
    for slot in SLOT_ORDER:
        phrases, score = _slot_scores(slot, emotion, neutral_mood)
        current = score[phrases.index(pick[slot])]
        ranked = sorted((current - value, phrase) for phrase, value in zip(phrases, score) if phrase != pick[slot])
        alternatives[slot] = ranked[:NEAREST_ALTERNATIVES]
    used = {slot: {earlier[slot] for earlier in chosen} for slot in SLOT_ORDER}
    changes = [[(slot, loss, phrase)] for slot in SLOT_ORDER for loss, phrase in alternatives[slot]]
    changes += [first + second for i, first in enumerate(changes) for second in changes[i + 1:]
                if first[0][0] != second[0][0]]
    best = None
    for change in changes:
        candidate = {**pick, **{slot: phrase for slot, _, phrase in change}}
        if candidate in chosen:
            continue
        rank = (sum(phrase not in used[slot] for slot, _, phrase in change), sum(loss for _, loss, _ in change))
        if best is None or rank < best[0]:
            best = (rank, candidate)
    return pick if best is None else best[1]


def palette_values(phrase: str) -> dict[str, float]:
    lightness, saturation, warmth = PALETTES[phrase]
    return {"lightness": lightness, "saturation": saturation, "warmth": warmth}


# mood_label's neutral band: a valence or arousal this close to 0 is not a quadrant's.
NEUTRAL_VALENCE = 0.2
NEUTRAL_AROUSAL = 0.3


def mood_label(emotion: Emotion) -> str:
    """The word written into musical_features["mood"] (the upstream key): a quadrant of the valence–arousal plane,
    with a neutral band around its axes, so that slightly minor music at a middling pace is not called angry."""
    valence, arousal = emotion.valence, emotion.arousal
    if abs(valence) < NEUTRAL_VALENCE:
        if abs(arousal) < NEUTRAL_AROUSAL:
            return "neutral"
        return "energetic" if arousal > 0 else "calm"
    if valence < 0:
        return "angry" if arousal >= NEUTRAL_AROUSAL else "sad"
    return "happy" if arousal >= 0 else "calm"
