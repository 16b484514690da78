"""Musical features → emotion → visual descriptors, sampled at a temperature that means something.

1. Cues → emotion. Arousal and valence are weighted sums of normalised cues, with the cue order Eerola, Friberg &
   Bresin (2013, Frontiers in Psychology 4:487) measured: mode weighs most for valence, then tempo, then
   register/brightness, then loudness; arousal rests on tempo, loudness, articulation (onset density) and timbre.
   Mode counts only as far as the key finder is confident (an ambiguous mode moves valence little).
2. Emotion → colour. Palmer, Schloss, Xu & Prado-León (2013, PNAS 110:8836) found that people match faster music
   in major keys with lighter, more saturated, yellower (warmer) colours, and slower minor music with darker,
   desaturated, bluer ones, and that emotion mediates the match. So palette lightness/saturation/warmth follow
   valence and arousal.
3. Descriptors. Every slot (subject, palette, light, motion, texture, composition, medium, mood) holds phrases placed
   in that space; a phrase's score is its closeness to the clip's target. Sampling is a softmax over scores at the
   prompt's temperature: T → 0 always picks the best match, 0.4 stays near it (convergent), 0.8 wanders (divergent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .features import MusicalFeatures


def _clip(value: float) -> float:
    return max(-1.0, min(1.0, value))


@dataclass(frozen=True)
class Emotion:
    valence: float  # -1 (sad, dark) .. 1 (happy, bright)
    arousal: float  # -1 (calm) .. 1 (energetic)
    lightness: float  # 0..1, palette targets (Palmer et al. 2013)
    saturation: float
    warmth: float  # 0 blue .. 1 yellow/orange

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
        "onsets": _clip((features.onset_rate - 2.5) / 2.5),  # 0 → -1, 5 onsets/s → +1
    }


TEMPO_AROUSAL_WEIGHT = 0.25


def emotion_of(features: MusicalFeatures) -> Emotion:
    c = cues(features)
    # Weights in Eerola et al.'s order of cue importance (mode > tempo > register > loudness for valence). Tempo's
    # weight for arousal is shared with onset density (how many events a second, which has no octave to get wrong),
    # so that a doubled tempo alone moves arousal by at most TEMPO_AROUSAL_WEIGHT: calm music stays calm.
    valence = _clip(0.55 * c["mode"] + 0.2 * c["tempo"] + 0.15 * c["brightness"] + 0.1 * c["loudness"])
    arousal = _clip(TEMPO_AROUSAL_WEIGHT * c["tempo"] + 0.3 * c["onsets"] + 0.25 * c["loudness"]
                    + 0.2 * c["brightness"])
    return Emotion(
        valence=valence,
        arousal=arousal,
        lightness=0.5 + 0.3 * valence + 0.1 * arousal,
        saturation=0.5 + 0.3 * arousal + 0.15 * valence,
        warmth=0.5 + 0.3 * valence + 0.15 * arousal,
    )


# Vocabularies -------------------------------------------------------------------------------------------------
# Emotion slots place each phrase at (valence, arousal); the palette places it at (lightness, saturation, warmth).
EMOTION_SLOTS: dict[str, dict[str, tuple[float, float]]] = {
    # Six columns of valence by five rows of arousal, so that every part of the plane has its own scene.
    "subject": {
        "a storm breaking over a dark ocean": (-0.7, 0.6), "a burning city skyline": (-0.7, 0.3),
        "ruins under a heavy sky": (-0.7, 0.0), "an abandoned house in the rain": (-0.7, -0.3),
        "a candlelit room with an empty chair": (-0.7, -0.6),
        "a lightning-struck mountain pass": (-0.42, 0.6), "a lone figure on a windswept cliff": (-0.42, 0.3),
        "a bare tree full of crows at twilight": (-0.42, 0.0), "an empty rain-soaked street": (-0.42, -0.3),
        "a frozen lake under a grey sky": (-0.42, -0.6),
        "a crowded station at rush hour": (-0.14, 0.6), "a city at night seen from a speeding car": (-0.14, 0.3),
        "a lighthouse in thick fog": (-0.14, 0.0), "an old library with dusty shelves": (-0.14, -0.3),
        "a snow-covered valley": (-0.14, -0.6),
        "a neon city street at night": (0.14, 0.6), "a train crossing a vast plain": (0.14, 0.3),
        "a winding river through a canyon": (0.14, 0.0), "a misty forest at dawn": (0.14, -0.3),
        "a quiet harbour at dusk": (0.14, -0.6),
        "a dancer spinning on a bright stage": (0.42, 0.6), "kites flying over a windy beach": (0.42, 0.3),
        "a hot-air balloon over green hills": (0.42, 0.0), "a garden path under blossoming trees": (0.42, -0.3),
        "a calm lake reflecting the moon": (0.42, -0.6),
        "a crowded summer festival under fireworks": (0.7, 0.6), "children running along a beach": (0.7, 0.3),
        "a sunlit meadow in full bloom": (0.7, 0.0), "a cottage with a warm glowing window": (0.7, -0.3),
        "a sleeping cat in a sunny window": (0.7, -0.6),
    },
    "mood": {
        "joyful": (0.9, 0.6), "euphoric": (0.9, 0.95), "playful": (0.7, 0.6), "serene": (0.6, -0.7),
        "tender": (0.5, -0.4), "dreamy": (0.3, -0.5), "nostalgic": (-0.1, -0.4), "contemplative": (0.0, -0.6),
        "melancholic": (-0.6, -0.5), "mournful": (-0.8, -0.7), "brooding": (-0.6, 0.1), "tense": (-0.5, 0.7),
        "furious": (-0.8, 0.95), "triumphant": (0.7, 0.9), "restless": (-0.2, 0.6), "mysterious": (-0.2, -0.1),
    },
    "light": {
        "blazing midday sunlight": (0.8, 0.7), "golden-hour haze": (0.7, -0.1), "soft morning glow": (0.6, -0.5),
        "flickering stage lights": (0.4, 0.9), "dappled light through leaves": (0.5, -0.2),
        "dim candlelight": (-0.1, -0.7), "cold moonlight": (-0.4, -0.6), "stormy overcast light": (-0.6, 0.5),
        "harsh strobing light": (-0.3, 0.9), "deep shadows": (-0.7, -0.2), "neon glow": (0.2, 0.7),
        "pale winter light": (-0.2, -0.5),
    },
    "motion": {
        "swirling, surging motion": (0.3, 0.95), "dancing, bouncing shapes": (0.8, 0.7),
        "streaks of speed": (0.1, 0.9), "gently drifting forms": (0.3, -0.6), "still, suspended calm": (0.2, -0.95),
        "slow, heavy sway": (-0.5, -0.5), "crashing waves": (-0.5, 0.9), "falling leaves": (-0.3, -0.4),
        "rising sparks": (0.5, 0.6), "fractured, jagged movement": (-0.7, 0.7),
    },
    "texture": {
        "crisp, sharp-edged detail": (0.3, 0.7), "soft blurred edges": (0.3, -0.6), "grainy, rough brushstrokes": (-0.4, 0.4),
        "smooth flowing gradients": (0.4, -0.4), "shimmering, sparkling particles": (0.7, 0.6),
        "dense layered patterns": (-0.1, 0.5), "weathered, cracked surfaces": (-0.7, -0.2), "velvety darkness": (-0.6, -0.6),
        "glossy reflections": (0.5, 0.3), "misty, diffuse air": (0.0, -0.7),
    },
    "composition": {
        "diagonal, dynamic composition": (0.2, 0.8), "wide panoramic view": (0.4, -0.2),
        "tight close-up": (-0.2, 0.4), "symmetrical, centred composition": (0.3, -0.5),
        "sparse composition with empty space": (-0.4, -0.7), "crowded, busy frame": (0.4, 0.7),
        "low angle looking up": (0.5, 0.5), "high view looking down": (-0.3, -0.3),
    },
    "medium": {
        "oil painting": (0.0, 0.2), "watercolour": (0.5, -0.5), "digital art": (0.3, 0.7), "charcoal drawing": (-0.6, -0.2),
        "cinematic photograph": (0.0, 0.5), "gouache illustration": (0.6, 0.2), "ink wash painting": (-0.2, -0.6),
        "pastel drawing": (0.6, -0.4), "expressionist painting": (-0.4, 0.8),
    },
}
PALETTES: dict[str, tuple[float, float, float]] = {  # (lightness, saturation, warmth), 0..1
    "golden yellow and bright orange": (0.8, 0.9, 0.95),
    "warm amber and honey": (0.65, 0.7, 0.85),
    "vivid crimson and scarlet": (0.45, 0.95, 0.9),
    "sunlit coral and turquoise": (0.75, 0.8, 0.7),
    "pale pastel pinks and cream": (0.9, 0.35, 0.7),
    "soft sage green and ivory": (0.75, 0.3, 0.5),
    "electric cyan and magenta": (0.6, 0.95, 0.4),
    "lush emerald and lime": (0.6, 0.8, 0.5),
    "cold steel blue and silver": (0.6, 0.3, 0.1),
    "dusky violet and plum": (0.3, 0.5, 0.3),
    "deep indigo and slate blue": (0.25, 0.5, 0.1),
    "muted grey-blue": (0.45, 0.15, 0.2),
    "charcoal and faded navy": (0.2, 0.15, 0.15),
    "ink black with faint teal": (0.1, 0.3, 0.2),
    "rust and burnt umber": (0.35, 0.6, 0.75),
}
SLOT_ORDER = ("subject", "mood", "palette", "light", "motion", "texture", "composition", "medium")
# The similarity kernel's width (in unit-scaled space) is KERNEL_WIDTH × temperature: 0.06 at T=0.4, where a phrase
# one grid step (0.15) farther than the best match is 20× less likely, so convergent prompts keep the best phrase in
# most slots; 0.12 at T=0.8, where it is only 2× less likely, so divergent prompts wander. (A width fixed and the
# logits divided by T, as before, left a third of convergent slots off the best phrase.)
KERNEL_WIDTH = 0.15


def scores(slot: str, emotion: Emotion) -> tuple[list[str], np.ndarray]:
    """Each phrase of a slot and its score (0 = on target; more negative = farther away)."""
    if slot == "palette":
        target = np.array([emotion.lightness, emotion.saturation, emotion.warmth])
        phrases = list(PALETTES)
        points = np.array([PALETTES[p] for p in phrases])
    else:
        target = np.array([emotion.valence, emotion.arousal]) / 2  # map -1..1 to the palette's unit scale
        phrases = list(EMOTION_SLOTS[slot])
        points = np.array([EMOTION_SLOTS[slot][p] for p in phrases]) / 2
    distance2 = ((points - target) ** 2).sum(axis=1)
    return phrases, -distance2 / (2 * KERNEL_WIDTH**2)


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
