"""The tests behind the answers, all from SciPy; the unit of analysis is the music sample.

- Paired (divergent − convergent, one value of each per sample): mean difference, a percentile bootstrap 95 %
  CI of it (scipy.stats.bootstrap), the Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, its default
  zero handling), and two effect sizes: the matched-pairs rank-biserial correlation (Kerby 2014, Comprehensive
  Psychology 3:11.IT.3.1; the Wilcoxon test's own effect size, −1 … 1) and Cohen's d_z (mean / SD of the
  differences).
- Music vs image: Spearman's ρ (scipy.stats.spearmanr) with its p-value, and a paired bootstrap CI of ρ. Below
  EXACT_SPEARMAN_BELOW samples the p-value is exact (every permutation of the ranks, scipy.stats.pearsonr on ranks
  with PermutationMethod): spearmanr's t approximation says p = 0 for n = 3 and |ρ| = 1, where the exact p is 1/3.
- Major vs minor (different samples): difference of means with a bootstrap CI, the Mann–Whitney U test
  (scipy.stats.mannwhitneyu, two-sided) and its rank-biserial correlation 2U / (n₁n₂) − 1.
A value that cannot be computed (too few samples, no variation) is None, with the reason in `note`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
# n! permutations are enumerated below this (9! = 362,880: about 2 s on a shared 2-core CPU); from 10 samples on,
# the t approximation of spearmanr is used (Zar 1972, JASA 67:578: adequate from about n = 10). SciPy's two-sided
# permutation p is twice the smaller one-sided p (with tied ranks that can differ a little from counting |rho|).
EXACT_SPEARMAN_BELOW = 10


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _bootstrap_ci(data: tuple, statistic, n_resamples: int, seed: int, paired: bool) -> tuple[float | None, float | None]:
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples give NaN, reported as no interval
        result = bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=CONFIDENCE, method="percentile",
                           paired=paired, vectorized=True, rng=np.random.default_rng(seed))
    return _finite(result.confidence_interval.low), _finite(result.confidence_interval.high)


def _mean(sample, axis=-1):
    return np.mean(sample, axis=axis)


@dataclass(frozen=True)
class PairedTest:
    """first − second over n paired samples."""

    n: int
    mean_first: float | None
    mean_second: float | None
    mean_difference: float | None
    ci95: tuple[float | None, float | None]
    wilcoxon_statistic: float | None
    p_value: float | None
    rank_biserial: float | None
    cohens_dz: float | None
    note: str | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}


def paired_test(first: list[float], second: list[float], n_resamples: int, seed: int) -> PairedTest:
    from scipy.stats import rankdata, wilcoxon

    first_values, second_values = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    differences = first_values - second_values
    n = len(differences)
    if n < 2:
        return PairedTest(n, _mean_or_none(first_values), _mean_or_none(second_values), _mean_or_none(differences),
                          (None, None), None, None, None, None, note="fewer than 2 samples with both values")
    ci = _bootstrap_ci((differences,), _mean, n_resamples, seed, paired=False)
    nonzero = differences[differences != 0]
    if len(nonzero) == 0:
        statistic = p_value = rank_biserial = None
        note = "every difference is 0: no test"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few samples: SciPy warns that the normal approximation is rough
            test = wilcoxon(differences)
        statistic, p_value, note = _finite(test.statistic), _finite(test.pvalue), None
        ranks = rankdata(np.abs(nonzero))
        rank_biserial = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    spread = differences.std(ddof=1)
    return PairedTest(n, float(first_values.mean()), float(second_values.mean()), float(differences.mean()), ci,
                      statistic, p_value, rank_biserial, float(differences.mean() / spread) if spread > 0 else None,
                      note)


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _spearman_statistic(x, y, axis=-1):
    # Spearman's ρ is Pearson's r of the ranks; pearsonr takes an axis, so all resamples go at once.
    from scipy.stats import pearsonr, rankdata

    return pearsonr(rankdata(x, axis=axis), rankdata(y, axis=axis), axis=axis).statistic


@dataclass(frozen=True)
class Correlation:
    n: int
    rho: float | None
    p_value: float | None
    ci95: tuple[float | None, float | None]
    note: str | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}


def spearman(x: list[float], y: list[float], n_resamples: int, seed: int) -> Correlation:
    from scipy.stats import spearmanr

    x_values, y_values = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x_values)
    if n < 3:
        return Correlation(n, None, None, (None, None), note="fewer than 3 samples")
    if np.ptp(x_values) == 0 or np.ptp(y_values) == 0:
        return Correlation(n, None, None, (None, None), note="one of the two does not vary")
    result = spearmanr(x_values, y_values)
    p_value, note = result.pvalue, None
    if n < EXACT_SPEARMAN_BELOW:
        from scipy.stats import PermutationMethod, pearsonr, rankdata

        exact = pearsonr(rankdata(x_values), rankdata(y_values),
                         method=PermutationMethod(n_resamples=math.factorial(n)))
        p_value, note = exact.pvalue, f"exact permutation p-value ({math.factorial(n)} orderings of {n} samples)"
    ci = _bootstrap_ci((x_values, y_values), _spearman_statistic, n_resamples, seed, paired=True)
    return Correlation(n, _finite(result.statistic), _finite(p_value), ci, note)


def _difference_of_means(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


@dataclass(frozen=True)
class GroupDifference:
    """first − second for two independent groups of samples."""

    n_first: int
    n_second: int
    mean_first: float | None
    mean_second: float | None
    mean_difference: float | None
    ci95: tuple[float | None, float | None]
    mann_whitney_u: float | None
    p_value: float | None
    rank_biserial: float | None
    note: str | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "ci95": list(self.ci95)}


def group_difference(first: list[float], second: list[float], n_resamples: int, seed: int) -> GroupDifference:
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return GroupDifference(len(a), len(b), _mean_or_none(a), _mean_or_none(b), None, (None, None), None, None,
                               None, note="fewer than 2 samples in a group")
    test = mannwhitneyu(a, b, alternative="two-sided")
    ci = _bootstrap_ci((a, b), _difference_of_means, n_resamples, seed, paired=False)
    return GroupDifference(len(a), len(b), float(a.mean()), float(b.mean()), float(a.mean() - b.mean()), ci,
                           _finite(test.statistic), _finite(test.pvalue),
                           float(2 * test.statistic / (len(a) * len(b)) - 1))
