"""How varied a set of images (or prompts) is, from their CLIP embeddings.

- mean pairwise cosine distance: the mean of 1 − cos over every pair (0 when all are the same; SciPy's pdist).
- Vendi score (Friedman & Dieng 2022, TMLR, "The Vendi Score: A Diversity Evaluation Metric for Machine
  Learning"): exp of the Shannon entropy of the eigenvalues of K/n, K the cosine-similarity matrix: the effective
  number of distinct items, from 1 (all the same) to n (all orthogonal).
- With several images per prompt, the pairs split into those of one prompt (they differ by seed only) and those
  of two prompts (prompt and seed differ); pairs of two prompts with the same image index share their seed when
  the folder was made with one seed per sample, so they differ by prompt alone.

Sets of different size are not comparable as they are (the Vendi score grows with n), so `matched_diversity`
measures a set on every subset of a given number of prompts and averages.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

MAX_SUBSETS = 200  # beyond this many prompt subsets, a seeded random choice of them (never hit with 3 vs 2)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def mean_pairwise_distance(embeddings: np.ndarray) -> float | None:
    """Mean cosine distance over all pairs of rows; None for fewer than two rows."""
    if len(embeddings) < 2:
        return None
    from scipy.spatial.distance import pdist

    # Rounding can put identical vectors a hair below zero; a distance is never negative.
    return float(max(pdist(np.asarray(embeddings, dtype=np.float64), metric="cosine").mean(), 0.0))


def vendi_score(embeddings: np.ndarray) -> float | None:
    """Vendi score with the cosine-similarity kernel; None for an empty set."""
    if len(embeddings) == 0:
        return None
    from scipy.linalg import eigvalsh
    from scipy.stats import entropy

    unit = _unit_rows(embeddings)
    eigenvalues = eigvalsh(unit @ unit.T / len(unit))
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # K is positive semi-definite: negatives are rounding
    return float(np.exp(entropy(eigenvalues)))  # entropy() normalises to sum 1 and uses the natural log


@dataclass(frozen=True)
class Split:
    """Mean cosine distances by kind of pair (None where a set has no such pair)."""

    between_seeds: float | None  # two images of one prompt
    between_prompts: float | None  # images of two different prompts
    between_prompts_same_index: float | None  # two prompts, same image index (same seed with a per-sample seed)


def split_by_prompt(embeddings: np.ndarray, prompt_ids: list[int], image_indexes: list[int]) -> Split:
    unit = _unit_rows(embeddings) if len(embeddings) else np.zeros((0, 0))
    distances = 1.0 - unit @ unit.T
    same_prompt, other_prompt, same_index = [], [], []
    for i, j in itertools.combinations(range(len(unit)), 2):
        distance = max(float(distances[i, j]), 0.0)
        if prompt_ids[i] == prompt_ids[j]:
            same_prompt.append(distance)
        else:
            other_prompt.append(distance)
            if image_indexes[i] == image_indexes[j]:
                same_index.append(distance)

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return Split(mean(same_prompt), mean(other_prompt), mean(same_index))


def prompt_subsets(prompt_ids: list[int], size: int, seed: int) -> list[tuple[int, ...]]:
    """Every `size`-prompt subset of `prompt_ids` (sorted), or MAX_SUBSETS of them chosen with `seed`."""
    subsets = list(itertools.combinations(sorted(prompt_ids), size))
    if len(subsets) > MAX_SUBSETS:
        chosen = np.random.default_rng(seed).choice(len(subsets), MAX_SUBSETS, replace=False)
        subsets = [subsets[i] for i in sorted(chosen)]
    return subsets


def matched_diversity(embeddings: np.ndarray, prompt_ids: list[int], size: int, seed: int,
                      measure) -> float | None:
    """`measure` (a function of an embedding matrix) averaged over the `size`-prompt subsets of a set whose rows
    belong to `prompt_ids`; each subset keeps every image of its prompts. None if no subset has a value."""
    values = []
    for subset in prompt_subsets(sorted(set(prompt_ids)), size, seed):
        rows = [i for i, prompt_id in enumerate(prompt_ids) if prompt_id in subset]
        value = measure(embeddings[rows])
        if value is not None:
            values.append(value)
    return float(np.mean(values)) if values else None
