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
- minor_top_palette_share / minor_dark_palette_share: palettes of minor clips' prompts (dark: lightness ≤ 0.35);
  major_top_palette_share / major_dark_palette_share: the same for major clips (whose dark share should stay near 0);
  the commonest palette's share should stay ≤ 0.35 in each mode (one mode, another sound: another palette).
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
        SLOT_ORDER,
        best_descriptors,
        descriptor_distance,
        mood_label,
    )

    plan = PromptPlan()
    subjects, moods = Counter(), Counter()
    palettes = {"major": Counter(), "minor": Counter()}
    at_best = slots = duplicates = 0
    near, far = [], []
    for sample_idx, features in enumerate(all_features):
        emotion, prompts = prompts_of(features, sample_idx, plan)
        moods[mood_label(emotion)] += 1
        subjects.update(p.descriptors["subject"] for p in prompts)
        palettes[features.tonality].update(p.descriptors["palette"] for p in prompts)
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
        "minor_top_palette_share": _top_share(palettes["minor"]),
        "minor_dark_palette_share": _share(palettes["minor"], lambda lightness: lightness <= 0.35),
        "major_top_palette_share": _top_share(palettes["major"]),
        "major_dark_palette_share": _share(palettes["major"], lambda lightness: lightness <= 0.35),
    }


def _top_share(counts: Counter) -> float:
    """The commonest phrase's share of `counts` (0 when empty)."""
    return counts.most_common(1)[0][1] / sum(counts.values()) if counts else 0.0


def _share(palettes: Counter, lightness_test) -> float:
    """The share of the palettes whose lightness passes `lightness_test` (0 when empty)."""
    from music2image.music.vocabulary import PALETTES

    total = sum(palettes.values())
    return sum(n for p, n in palettes.items() if lightness_test(PALETTES[p][0])) / total if total else 0.0


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
