"""The phrases the mapping chooses from, each placed where it fits (mapping.py scores them by closeness to a clip).

Emotion slots place a phrase at (valence, arousal), both -1..1; the palette at (lightness, saturation, warmth), 0..1.
Subjects have a third coordinate, the scene's elevation, which follows the music's brightness (see SUBJECT_SCENES).
"""

from __future__ import annotations

# Subjects ------------------------------------------------------------------------------------------------------
# Six columns of valence by five rows of arousal, so that every part of the plane has its scenes; in each cell four
# scenes from the depths to the sky. Mode decides most of valence (Eerola et al. 2013), so music of one mode and a
# middling pace lands in a few cells: with one scene per cell, a set of chorales put one subject in 15 % of its
# prompts. Elevation follows brightness (the spectral centroid, heard as pitch height): listeners place high pitches
# high in space, a match that mirrors where high and low sounds come from in natural scenes (Parise, Knorre & Ernst
# 2014, PNAS 111:6104; review: Spence 2011, Attention, Perception & Psychophysics 73:971). So a dark organ and a
# bright harpsichord with the same mood get different scenes of that mood, as a function of the music only.
SUBJECT_ELEVATIONS = (-0.75, -0.25, 0.25, 0.75)  # brightness cue: -0.75 ≈ 875 Hz … 0.75 ≈ 3100 Hz (mapping.cues)
SUBJECT_SCENES: dict[tuple[float, float], tuple[str, str, str, str]] = {  # (valence, arousal): depths … sky
    (-0.7, 0.6): ("a sinking ship in a black whirlpool", "a storm breaking over a dark ocean",
                  "a burning castle on a crag", "jagged lightning splitting a black sky"),
    (-0.7, 0.3): ("a collapsing mine shaft full of smoke", "a burning city skyline",
                  "smoke pouring from a cliff-top fortress", "ash clouds rolling over a volcano"),
    (-0.7, 0.0): ("a sunken cathedral under dark water", "ruins under a heavy sky",
                  "a ruined tower on a barren ridge", "black clouds massing over a wasteland"),
    (-0.7, -0.3): ("a flooded cellar in darkness", "an abandoned house in the rain",
                   "a dead tree on a bleak hilltop", "grey rain clouds over an empty moor"),
    (-0.7, -0.6): ("a dark crypt with a single candle", "a candlelit room with an empty chair",
                   "an empty bell tower at dusk", "a starless night sky over a silent graveyard"),
    (-0.42, 0.6): ("a torrent roaring through a dark gorge", "a wolf pack running through a blizzard",
                   "a lightning-struck mountain pass", "a tornado tearing across the sky"),
    (-0.42, 0.3): ("a black river rushing through a canyon", "a ship fighting through heavy swell",
                   "a lone figure on a windswept cliff", "ravens wheeling in a stormy sky"),
    (-0.42, 0.0): ("a cave mouth swallowed by shadow", "a bare tree full of crows at twilight",
                   "a crumbling watchtower at twilight", "a blood-red moon behind thin clouds"),
    (-0.42, -0.3): ("a dripping underground tunnel", "an empty rain-soaked street",
                    "a rain-streaked attic window", "a single gull in a grey rainy sky"),
    (-0.42, -0.6): ("a dark well in an abandoned courtyard", "a frozen lake under a grey sky",
                    "a snowbound mountain hut", "a pale winter moon behind bare branches"),
    (-0.14, 0.6): ("a subway train rushing through a tunnel", "a crowded station at rush hour",
                   "cranes on a windy skyscraper", "a jet streaking through storm clouds"),
    (-0.14, 0.3): ("headlights in a long road tunnel", "a city at night seen from a speeding car",
                   "a rooftop view of a restless city", "a plane flying through dark clouds"),
    (-0.14, 0.0): ("a shipwreck resting on the sea floor", "a lighthouse in thick fog",
                   "a lone tower veiled in mist", "a flock of birds vanishing into fog"),
    (-0.14, -0.3): ("a dim wine cellar with old barrels", "an old library with dusty shelves",
                    "a dusty attic with a round window", "a faded moon over quiet rooftops"),
    (-0.14, -0.6): ("a still pool deep in a cave", "a snow-covered valley",
                    "a mountain monastery in falling snow", "snowflakes drifting from a white sky"),
    (0.14, 0.6): ("a bustling underground market", "a neon city street at night",
                  "a rooftop party above city lights", "searchlights sweeping a night sky"),
    (0.14, 0.3): ("rafts shooting the rapids of a deep gorge", "a train crossing a vast plain",
                  "a bridge spanning a mountain valley", "a seaplane flying along the coast"),
    (0.14, 0.0): ("sunbeams in clear water over a reef", "a winding river through a canyon",
                  "a mountain ridge above drifting clouds", "clouds drifting over a wide valley"),
    (0.14, -0.3): ("a mossy ravine with a stream", "a misty forest at dawn",
                   "a treetop canopy in morning mist", "a heron flying over a misty marsh"),
    (0.14, -0.6): ("a quiet grotto with still water", "a quiet harbour at dusk",
                   "a hilltop chapel in evening light", "the first stars over a dusky sea"),
    (0.42, 0.6): ("divers among bright schools of fish", "a dancer spinning on a bright stage",
                  "acrobats on a high wire", "swallows darting across the sky"),
    (0.42, 0.3): ("swimmers in a sunlit lagoon", "kites flying over a windy beach",
                  "a cyclist cresting a sunny hill", "paragliders over a sunlit coast"),
    (0.42, 0.0): ("a rowing boat on a green river", "a country road through golden fields",
                  "a hot-air balloon over green hills", "white clouds sailing across a blue sky"),
    (0.42, -0.3): ("a lily pond in a sheltered garden", "a garden path under blossoming trees",
                   "a treehouse among blossoming branches", "petals floating on a warm breeze"),
    (0.42, -0.6): ("water lilies on a moonlit pond", "a calm lake reflecting the moon",
                   "a moonlit terrace above the sea", "a full moon among soft clouds"),
    (0.7, 0.6): ("children splashing in a sunlit pool", "a crowded summer festival under fireworks",
                 "a Ferris wheel at a bright fair", "fireworks bursting across the night sky"),
    (0.7, 0.3): ("ducklings paddling in a sparkling pond", "children running along a beach",
                 "children on swings in a sunny park", "colourful kites high in a summer sky"),
    (0.7, 0.0): ("a sunny stream full of bright pebbles", "a sunlit meadow in full bloom",
                 "a sunflower field on a hilltop", "butterflies in a bright blue sky"),
    (0.7, -0.3): ("a warm hearth in a stone kitchen", "a cottage with a warm glowing window",
                  "a sunny balcony full of flowers", "a rainbow over a village"),
    (0.7, -0.6): ("a warm bath lit by candles", "a sleeping cat in a sunny window",
                  "a hammock in a sunny orchard", "soft pink clouds at sunrise"),
}
SUBJECTS: dict[str, tuple[float, float, float]] = {  # phrase: (valence, arousal, elevation)
    scene: (valence, arousal, elevation)
    for (valence, arousal), scenes in SUBJECT_SCENES.items() for scene, elevation in zip(scenes, SUBJECT_ELEVATIONS)
}

# The other slots -----------------------------------------------------------------------------------------------
EMOTION_SLOTS: dict[str, dict[str, tuple[float, ...]]] = {
    "subject": SUBJECTS,
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
        "crisp, sharp-edged detail": (0.3, 0.7), "soft blurred edges": (0.3, -0.6),
        "grainy, rough brushstrokes": (-0.4, 0.4), "smooth flowing gradients": (0.4, -0.4),
        "shimmering, sparkling particles": (0.7, 0.6), "dense layered patterns": (-0.1, 0.5),
        "weathered, cracked surfaces": (-0.7, -0.2), "velvety darkness": (-0.6, -0.6), "glossy reflections": (0.5, 0.3),
        "misty, diffuse air": (0.0, -0.7),
    },
    "composition": {
        "diagonal, dynamic composition": (0.2, 0.8), "wide panoramic view": (0.4, -0.2),
        "tight close-up": (-0.2, 0.4), "symmetrical, centred composition": (0.3, -0.5),
        "sparse composition with empty space": (-0.4, -0.7), "crowded, busy frame": (0.4, 0.7),
        "low angle looking up": (0.5, 0.5), "high view looking down": (-0.3, -0.3),
    },
    "medium": {
        "oil painting": (0.0, 0.2), "watercolour": (0.5, -0.5), "digital art": (0.3, 0.7),
        "charcoal drawing": (-0.6, -0.2), "cinematic photograph": (0.0, 0.5), "gouache illustration": (0.6, 0.2),
        "ink wash painting": (-0.2, -0.6), "pastel drawing": (0.6, -0.4), "expressionist painting": (-0.4, 0.8),
    },
}
PALETTES: dict[str, tuple[float, float, float]] = {  # (lightness, saturation, warmth), 0..1
    # Dark (lightness ≤ 0.35), about 0.1 apart: where minor music lands. On the tuning draw (seed 2027) its targets
    # spread over lightness 0.15–0.35, saturation 0.27–0.49, warmth 0.24–0.39 (10th–90th percentile), and the five
    # dark palettes there were too few: one took two thirds of minor clips' prompts. Darker and softer sounds sit
    # low, louder and busier ones high in saturation; colder with sadder and slower music (mapping.PALETTE_WEIGHTS).
    "ink black with faint teal": (0.1, 0.3, 0.2),
    "charcoal and faded navy": (0.2, 0.2, 0.15),
    "midnight blue and pewter": (0.2, 0.35, 0.15),
    "dark aubergine and smoke": (0.2, 0.3, 0.35),
    "bruised purple and black": (0.18, 0.47, 0.28),
    "deep forest green and black": (0.2, 0.45, 0.45),
    "deep indigo and slate blue": (0.22, 0.58, 0.12),
    "oxblood red and charcoal": (0.2, 0.6, 0.55),
    "deep teal and storm grey": (0.28, 0.35, 0.22),
    "dusky violet and plum": (0.28, 0.47, 0.3),
    "stormy sea green and petrol blue": (0.28, 0.58, 0.26),
    "dark moss and bark brown": (0.3, 0.4, 0.52),
    "smoky mauve and ash grey": (0.35, 0.36, 0.32),
    "shadowy bronze and olive": (0.35, 0.48, 0.4),
    "burgundy and deep wine": (0.34, 0.6, 0.4),
    "sepia and faded brown": (0.35, 0.3, 0.6),
    "rust and burnt umber": (0.35, 0.6, 0.75),
    # Middle: fast or bright minor music, dull or slow major music
    "muted grey-blue": (0.45, 0.15, 0.2),
    "faded denim and sand": (0.5, 0.3, 0.45),
    "dusty rose and mauve": (0.54, 0.5, 0.6),
    "teal and copper": (0.45, 0.6, 0.5),
    "olive green and ochre": (0.46, 0.46, 0.6),
    "vivid crimson and scarlet": (0.45, 0.95, 0.9),
    # Light: major music, whose targets spread over lightness 0.45–0.75, saturation 0.44–0.72, warmth 0.56–0.75 on
    # the tuning draw, with several palettes around their middle (one palette there took 0.39 of their prompts)
    "cold steel blue and silver": (0.6, 0.3, 0.1),
    "misty lilac and silver": (0.62, 0.25, 0.38),
    "electric cyan and magenta": (0.6, 0.95, 0.4),
    "lush emerald and lime": (0.6, 0.8, 0.5),
    "warm terracotta and saffron": (0.54, 0.64, 0.74),
    "warm amber and honey": (0.62, 0.62, 0.8),
    "sunny apricot and leaf green": (0.68, 0.66, 0.72),
    "lavender and pale gold": (0.7, 0.4, 0.55),
    "spring green and sky blue": (0.62, 0.58, 0.54),
    "soft sage green and ivory": (0.75, 0.3, 0.5),
    "creamy beige and soft gold": (0.7, 0.5, 0.64),
    "sunlit coral and turquoise": (0.76, 0.74, 0.74),
    "bright tangerine and hot pink": (0.68, 0.9, 0.85),
    "sky blue and white": (0.82, 0.45, 0.32),
    "fresh mint and lemon": (0.82, 0.6, 0.6),
    "soft peach and butter yellow": (0.82, 0.55, 0.82),
    "golden yellow and bright orange": (0.8, 0.9, 0.95),
    "pale pastel pinks and cream": (0.9, 0.35, 0.7),
}
