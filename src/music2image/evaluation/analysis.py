"""From per-image measures to the answers: per (sample, mode) diversity, divergent vs convergent, music vs image."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import diversity
from .folder import ImageEntry, numeric_feature, tonality
from .statistics import Correlation, GroupDifference, PairedTest, group_difference, paired_test, spearman

IMAGE_MEASURES = ("clip_score", "lightness", "chroma", "warmth", "colourfulness")
COLOUR_MEASURES = ("lightness", "chroma", "warmth")
MUSIC_FEATURES = ("valence", "arousal", "tempo")
FIRST_MODE, SECOND_MODE = "divergent", "convergent"  # differences are divergent − convergent


@dataclass
class ImageMeasures:
    entry: ImageEntry
    music: dict[str, object]
    sha256: str
    clip_score: float
    lightness: float
    chroma: float
    hue: float
    warmth: float
    colourfulness: float
    embedding: np.ndarray = field(repr=False)


@dataclass
class SampleModeMeasures:
    """One (sample, mode): its sets of images and prompts."""

    sample_idx: int
    mode: str
    prompts: int
    images: int
    image_diversity: float | None  # mean pairwise cosine distance of every image of the set
    vendi_score: float | None
    prompt_diversity: float | None  # the same, on the CLIP text embeddings of its distinct prompts
    matched_prompts: int | None  # the subset size both modes of the sample are compared at
    image_diversity_matched: float | None
    vendi_score_matched: float | None
    prompt_diversity_matched: float | None
    between_seeds: float | None  # K > 1: pairs of one prompt
    between_prompts: float | None
    between_prompts_same_index: float | None
    means: dict[str, float]  # mean of each IMAGE_MEASURES over the set's images


# The per-(sample, mode) values compared between modes, and what each means (for the JSON and the report).
COMPARED = {
    "image_diversity": "mean pairwise cosine distance of the CLIP image embeddings (equal-size prompt subsets)",
    "vendi_score": "Vendi score of the CLIP image embeddings (equal-size prompt subsets)",
    "prompt_diversity": "mean pairwise cosine distance of the CLIP text embeddings of the prompts (equal-size subsets)",
    "between_seeds": "mean cosine distance between images of one prompt (several images per prompt only)",
    "between_prompts": "mean cosine distance between images of different prompts (several images per prompt only)",
    "between_prompts_same_index": "as between_prompts, pairs with the same image index only (the same seed when "
                                  "the folder was made with one seed per sample)",
    **{f"mean_{name}": f"mean {name} of the set's images" for name in IMAGE_MEASURES},
}
_COMPARED_FIELD = {"image_diversity": "image_diversity_matched", "vendi_score": "vendi_score_matched",
                   "prompt_diversity": "prompt_diversity_matched"}


def sample_mode_measures(images: list[ImageMeasures], text_embeddings: dict[str, np.ndarray],
                         seed: int) -> list[SampleModeMeasures]:
    groups: dict[int, dict[str, list[ImageMeasures]]] = {}
    for image in images:
        groups.setdefault(image.entry.sample_idx, {}).setdefault(image.entry.mode, []).append(image)
    rows = []
    for sample_idx in sorted(groups):
        modes = groups[sample_idx]
        prompt_counts = [len({image.entry.prompt_id for image in modes[m]}) for m in (FIRST_MODE, SECOND_MODE)
                         if m in modes]
        # 3 convergent vs 2 divergent prompts: both are measured on 2-prompt subsets (all of them, averaged).
        matched = min(prompt_counts) if len(prompt_counts) == 2 else None
        for mode in sorted(modes):
            rows.append(_set_measures(sample_idx, mode, modes[mode], text_embeddings, matched, seed))
    return rows


def _set_measures(sample_idx: int, mode: str, images: list[ImageMeasures], text_embeddings: dict[str, np.ndarray],
                  matched: int | None, seed: int) -> SampleModeMeasures:
    images = sorted(images, key=lambda i: (i.entry.prompt_id, i.entry.image_index))
    embeddings = np.stack([image.embedding for image in images])
    prompt_ids = [image.entry.prompt_id for image in images]
    prompts = {image.entry.prompt_id: image.entry.visual_prompt for image in images}
    prompt_order = sorted(prompts)
    texts = np.stack([text_embeddings[prompts[p]] for p in prompt_order])
    split = diversity.split_by_prompt(embeddings, prompt_ids, [image.entry.image_index for image in images])
    several = any(prompt_ids.count(p) > 1 for p in prompt_order)
    subset_seed = seed * 1_000_003 + sample_idx
    in_mode = matched if matched is not None and mode in (FIRST_MODE, SECOND_MODE) else None

    def at_matched_size(matrix, ids, measure):
        return None if in_mode is None else diversity.matched_diversity(matrix, ids, in_mode, subset_seed, measure)

    return SampleModeMeasures(
        sample_idx=sample_idx, mode=mode, prompts=len(prompt_order), images=len(images),
        image_diversity=diversity.mean_pairwise_distance(embeddings),
        vendi_score=diversity.vendi_score(embeddings),
        prompt_diversity=diversity.mean_pairwise_distance(texts),
        matched_prompts=in_mode,
        image_diversity_matched=at_matched_size(embeddings, prompt_ids, diversity.mean_pairwise_distance),
        vendi_score_matched=at_matched_size(embeddings, prompt_ids, diversity.vendi_score),
        prompt_diversity_matched=at_matched_size(texts, prompt_order, diversity.mean_pairwise_distance),
        between_seeds=split.between_seeds if several else None,
        between_prompts=split.between_prompts if several else None,
        between_prompts_same_index=split.between_prompts_same_index if several else None,
        means={name: float(np.mean([getattr(image, name) for image in images])) for name in IMAGE_MEASURES},
    )


def _value(row: SampleModeMeasures, name: str) -> float | None:
    if name.startswith("mean_"):
        return row.means[name[len("mean_"):]]
    return getattr(row, _COMPARED_FIELD.get(name, name))


def compare_modes(rows: list[SampleModeMeasures], n_resamples: int, seed: int) -> dict[str, PairedTest]:
    """divergent − convergent for every compared value, over the samples that have both."""
    by_sample: dict[int, dict[str, SampleModeMeasures]] = {}
    for row in rows:
        by_sample.setdefault(row.sample_idx, {})[row.mode] = row
    tests = {}
    for name in COMPARED:
        pairs = [(_value(modes[FIRST_MODE], name), _value(modes[SECOND_MODE], name))
                 for _, modes in sorted(by_sample.items()) if FIRST_MODE in modes and SECOND_MODE in modes]
        pairs = [(first, second) for first, second in pairs if first is not None and second is not None]
        if pairs or not name.startswith("between_"):  # the K > 1 splits appear only when there are several images
            tests[name] = paired_test([p[0] for p in pairs], [p[1] for p in pairs], n_resamples, seed)
    return tests


def prompts_vs_seeds(rows: list[SampleModeMeasures], n_resamples: int, seed: int) -> dict[str, PairedTest]:
    """Per mode, with several images per prompt: between_prompts − between_seeds over the samples. Positive means
    the prompts of a set differ more than one prompt's images under other seeds: the prompts, not seed noise."""
    tests = {}
    for mode in sorted({row.mode for row in rows}):
        pairs = [(row.between_prompts, row.between_seeds) for row in rows
                 if row.mode == mode and row.between_prompts is not None and row.between_seeds is not None]
        if pairs:
            tests[mode] = paired_test([p[0] for p in pairs], [p[1] for p in pairs], n_resamples, seed)
    return tests


@dataclass
class MusicSample:
    """One sample's images, averaged, beside its music (the unit of the music-vs-image tests)."""

    sample_idx: int
    features: dict[str, float | None]
    tonality: str | None
    means: dict[str, float]


def music_samples(images: list[ImageMeasures]) -> list[MusicSample]:
    by_sample: dict[int, list[ImageMeasures]] = {}
    for image in images:
        by_sample.setdefault(image.entry.sample_idx, []).append(image)
    samples = []
    for sample_idx, items in sorted(by_sample.items()):
        music = items[0].music
        samples.append(MusicSample(
            sample_idx, {name: numeric_feature(music, name) for name in MUSIC_FEATURES}, tonality(music),
            {name: float(np.mean([getattr(i, name) for i in items])) for name in COLOUR_MEASURES}))
    return samples


def music_vs_image(samples: list[MusicSample], n_resamples: int, seed: int
                   ) -> tuple[dict[str, dict[str, Correlation]], dict[str, GroupDifference]]:
    correlations: dict[str, dict[str, Correlation]] = {}
    for measure in COLOUR_MEASURES:
        correlations[measure] = {}
        for feature in MUSIC_FEATURES:
            pairs = [(s.means[measure], s.features[feature]) for s in samples if s.features[feature] is not None]
            correlation = spearman([p[0] for p in pairs], [p[1] for p in pairs], n_resamples, seed)
            if not pairs:  # not "too few samples": the prompts file has none (music_vs_image.note says why)
                correlation = replace(correlation, note=f"no sample has a {feature} in the prompts file")
            correlations[measure][feature] = correlation
    major_minor = {
        measure: group_difference([s.means[measure] for s in samples if s.tonality == "major"],
                                  [s.means[measure] for s in samples if s.tonality == "minor"], n_resamples, seed)
        for measure in COLOUR_MEASURES
    }
    return correlations, major_minor
