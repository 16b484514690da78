#!/usr/bin/env python3
"""Do the prompts follow the music, converge and diverge? Measured on the evaluation set's analysed features.

    python benchmarks/music_accuracy.py --rows rows.json && python benchmarks/music_prompts.py --rows rows.json

Per clip, the default plan (3 convergent at T=0.4, 2 divergent at T=0.8, seed 0), and the same clip with its tempo
doubled (a beat tracker's octave error). Prints a table and one JSON line:
- subject_max_share / subject_top4_share: how often the commonest subject(s) appear over all prompts (goal ≤ 0.10);
- convergent_at_best: share of convergent prompts' slots holding the slot's best phrase (goal ≥ 0.80);
- distance_t04 / distance_t08: mean share of slots that differ between two prompts of a sample, three prompts drawn
  at T=0.4 and three at T=0.8 (convergent ones should sit much closer together);
- samples_with_identical_prompts (goal 0);
- moods: mood labels over the set; angry_after_doubling: slow (< 90 BPM) minor clips labelled angry once their tempo
  is doubled;
- minor_top_palette_share / minor_dark_palette_share: palettes of minor clips' prompts (dark: lightness ≤ 0.35).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np


def features_from(record: dict):
    from music2image.music.features import MusicalFeatures

    return MusicalFeatures(**record)


def prompts_of(features, sample_idx: int, plan):
    from music2image.music import sample_prompts
    from music2image.music.writer import VocabularyWriter

    return sample_prompts(features, sample_idx, plan, VocabularyWriter())


def measure(all_features: list) -> dict:
    from music2image.music import PromptPlan
    from music2image.music.mapping import (
        PALETTES,
        SLOT_ORDER,
        best_descriptors,
        descriptor_distance,
        mood_label,
    )

    plan = PromptPlan()
    subjects, moods, minor_palettes = Counter(), Counter(), Counter()
    at_best = slots = duplicates = 0
    near, far = [], []
    for sample_idx, features in enumerate(all_features):
        emotion, prompts = prompts_of(features, sample_idx, plan)
        moods[mood_label(emotion)] += 1
        subjects.update(p.descriptors["subject"] for p in prompts)
        if features.tonality == "minor":
            minor_palettes.update(p.descriptors["palette"] for p in prompts)
        texts = [p.visual_prompt for p in prompts]
        duplicates += len(set(texts)) < len(texts)
        best = best_descriptors(emotion, not features.mode_is_clear)
        for prompt in prompts[: plan.convergent]:
            at_best += sum(prompt.descriptors[slot] == best[slot] for slot in SLOT_ORDER)
            slots += len(SLOT_ORDER)
        for temperature, bucket in ((0.4, near), (0.8, far)):
            trio = PromptPlan(convergent=3, divergent=0, convergent_temperature=temperature)
            bucket.append(descriptor_distance([p.descriptors for p in prompts_of(features, sample_idx, trio)[1]]))
    doubled = [f for f in all_features if f.tonality == "minor" and f.tempo and f.tempo < 90]
    angry_after = sum(mood_label(prompts_of(replace(f, tempo=2 * f.tempo), 0, plan)[0]) == "angry" for f in doubled)
    total = sum(subjects.values())
    minor_total = sum(minor_palettes.values()) or 1
    return {
        "clips": len(all_features),
        "subjects_used": len(subjects),
        "subject_max_share": subjects.most_common(1)[0][1] / total,
        "subject_top4_share": sum(n for _, n in subjects.most_common(4)) / total,
        "most_common_subject": subjects.most_common(1)[0][0],
        "convergent_at_best": at_best / slots,
        "distance_t04": float(np.mean(near)),
        "distance_t08": float(np.mean(far)),
        "samples_with_identical_prompts": duplicates,
        "moods": dict(moods.most_common()),
        "slow_minor_clips": len(doubled),
        "angry_after_doubling": angry_after,
        "minor_top_palette_share": minor_palettes.most_common(1)[0][1] / minor_total if minor_palettes else 0.0,
        "minor_dark_palette_share": sum(n for p, n in minor_palettes.items() if PALETTES[p][0] <= 0.35) / minor_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=Path, required=True, help="the --rows file of benchmarks/music_accuracy.py")
    args = parser.parse_args()
    rows = json.loads(args.rows.read_text())
    figures = measure([features_from(r["features"]) for r in rows])
    for name, value in figures.items():
        print(f"{name:<34}{value:.3f}" if isinstance(value, float) else f"{name:<34}{value}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    sys.exit(main())
