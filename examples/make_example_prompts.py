"""Writes examples/visual_prompts.json: 100 music samples × 5 visual prompts (3 convergent at T=0.4, 2 divergent
at T=0.8), shaped like the audio stage's output, each prompt well under CLIP's 77 tokens.

    python examples/make_example_prompts.py

Deterministic (fixed seed), so the committed file can be checked against it.
"""

import json
import random
from pathlib import Path

KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
GENRES = ["jazz trio", "string quartet", "synth pop", "folk guitar", "piano ballad", "techno", "blues", "ambient drone",
          "brass band", "lo-fi hip hop", "flamenco", "gamelan", "orchestral film score", "bossa nova", "post-rock"]
SCENES = {
    "bright": ["a sunlit meadow", "a lively harbour at noon", "a carnival street", "a rooftop garden in spring",
               "a glass greenhouse full of flowers", "a crowded dance floor", "a seaside promenade"],
    "dark": ["a rain-soaked city at night", "an empty cathedral", "a misty pine forest", "a lighthouse in a storm",
             "a candlelit attic", "a frozen lake under moonlight", "a desert highway at dusk"],
}
PALETTES = {
    ("major", "high"): "saturated yellows, oranges and warm reds",
    ("major", "low"): "soft pastel pinks, peach and pale gold",
    ("minor", "high"): "deep crimson, electric blue and black",
    ("minor", "low"): "muted slate blue, grey and violet",
}
MOTION = {"fast": ["swirling motion", "sharp diagonal strokes", "bursting particles", "flickering lights"],
          "slow": ["still water reflections", "long gentle curves", "slowly drifting fog", "calm horizontal layers"]}
MEDIA = ["oil painting", "watercolor", "digital illustration", "35mm photograph", "gouache", "charcoal and pastel",
         "stained glass", "cinematic still"]
DIVERGENT = ["as a surreal dreamscape of floating instruments", "as an abstract map of sound waves",
             "reimagined as an ancient mosaic", "as a cosmic nebula shaped like a violin",
             "as a paper-cut diorama", "as ink bleeding through wet paper", "as a kaleidoscope of stained glass",
             "as a city built from piano keys", "as aurora ribbons over a silent sea", "as a garden of neon coral"]


def sample(rng: random.Random, idx: int) -> dict:
    tonality = rng.choice(["major", "minor"])
    tempo = rng.randrange(60, 181)
    energy = "high" if tempo >= 115 or rng.random() < 0.2 else "low"
    key = rng.choice(KEYS)
    genre = rng.choice(GENRES)
    mood = {("major", "high"): "joyful", ("major", "low"): "serene",
            ("minor", "high"): "tense", ("minor", "low"): "melancholic"}[(tonality, energy)]
    light = "bright" if tonality == "major" else "dark"
    pace = "fast" if tempo >= 110 else "slow"
    palette = PALETTES[(tonality, energy)]
    features = {"key": key, "tonality": tonality, "tempo": float(tempo), "mood": mood, "genre_hint": genre,
                "dynamic_intensity": "high" if energy == "high" else "moderate", "time_signature": "4/4"}
    prompts = []
    for prompt_id in range(3):
        scene = rng.choice(SCENES[light])
        text = (f"{mood.capitalize()} {genre} in {key} {tonality} at {tempo} BPM: {scene}, {palette}, "
                f"{rng.choice(MOTION[pace])}, {rng.choice(MEDIA)}, soft {'golden' if light == 'bright' else 'blue'} light")
        prompts.append({"prompt_id": prompt_id, "mode": "convergent", "temperature": 0.4, "visual_prompt": text})
    for prompt_id in range(3, 5):
        text = (f"{mood.capitalize()} {genre} in {key} {tonality} {rng.choice(DIVERGENT)}, "
                f"{palette}, {rng.choice(MOTION['fast' if pace == 'slow' else 'slow'])}, {rng.choice(MEDIA)}")
        prompts.append({"prompt_id": prompt_id, "mode": "divergent", "temperature": 0.8, "visual_prompt": text})
    return {"sample_idx": idx, "musical_features": features, "prompts": prompts}


def main() -> None:
    rng = random.Random(2024)
    document = {
        "metadata": {"description": "music2image example: 100 samples x 5 visual prompts", "prompts_per_sample": 5,
                     "convergent": {"count": 3, "temperature": 0.4}, "divergent": {"count": 2, "temperature": 0.8}},
        "samples": [sample(rng, idx) for idx in range(100)],
    }
    path = Path(__file__).with_name("visual_prompts.json")
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
