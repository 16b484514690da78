"""The evaluation's files for machines (images.csv, samples.csv, evaluation.json), and reading them back.

`headline` and `image_measures` read what an earlier `evaluate` wrote (as untrusted files) for the summary and
the gallery.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..untrusted_json import loads as parse_json
from .analysis import COMPARED, IMAGE_MEASURES, ImageMeasures, SampleModeMeasures

EVALUATION_DIR = "evaluation"
IMAGES_CSV, SAMPLES_CSV, EVALUATION_JSON, REPORT_HTML = "images.csv", "samples.csv", "evaluation.json", "report.html"
ALPHA = 0.05
# The exact two-sided Wilcoxon signed-rank p of n paired samples is at least 2 / 2**n (every difference of one sign;
# Wilcoxon 1945): below this many samples no difference can reach ALPHA, so "no clear difference" would say nothing.
MIN_SAMPLES_FOR_ALPHA = next(n for n in range(1, 64) if 2.0 ** (1 - n) < ALPHA)
ENTRY_COLUMNS = ("sample_idx", "prompt_id", "image_index", "mode", "temperature", "seed", "image_path")
MEASURE_COLUMNS = ("clip_score", "lightness", "chroma", "hue", "warmth", "colourfulness")
SAMPLE_COLUMNS = ("sample_idx", "mode", "prompts", "images", "image_diversity", "vendi_score", "prompt_diversity",
                  "matched_prompts", "image_diversity_matched", "vendi_score_matched", "prompt_diversity_matched",
                  "between_seeds", "between_prompts", "between_prompts_same_index",
                  *(f"mean_{name}" for name in IMAGE_MEASURES))


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # text from the prompts file must not run as a spreadsheet formula
    return value


def _csv(header: list[str], rows: list[list]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return buffer.getvalue().encode("utf-8")


def music_columns(images: list[ImageMeasures]) -> list[str]:
    names: dict[str, None] = {}
    for image in images:
        names.update(dict.fromkeys(image.music))
    return list(names)


def images_csv(images: list[ImageMeasures]) -> bytes:
    features = music_columns(images)
    header = [*ENTRY_COLUMNS, *(f"music_{name}" for name in features), *MEASURE_COLUMNS, "image_sha256"]
    rows = [[*(getattr(i.entry, name) for name in ENTRY_COLUMNS), *(i.music.get(name) for name in features),
             *(getattr(i, name) for name in MEASURE_COLUMNS), i.sha256] for i in images]
    return _csv(header, rows)


def samples_csv(rows: list[SampleModeMeasures]) -> bytes:
    def value(row, name):
        return row.means[name[5:]] if name.startswith("mean_") else getattr(row, name)

    return _csv(list(SAMPLE_COLUMNS), [[value(row, name) for name in SAMPLE_COLUMNS] for row in rows])


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _details(name: str, test: dict) -> str:
    low, high = test["ci95"]
    return (f"{name.replace('_', ' ')}: divergent − convergent = {_number(test['mean_difference'])} "
            f"(95 % CI {_number(low)} to {_number(high)}), Wilcoxon p = {test['p_value']:.3g}, "
            f"rank-biserial r = {_number(test['rank_biserial'], 2)}, n = {test['n']} samples")


def _testable(test) -> bool:
    return isinstance(test, dict) and test.get("p_value") is not None and test.get("mean_difference") is not None


def _too_few(test: dict) -> bool:
    return test["p_value"] >= ALPHA and isinstance(test.get("n"), int) and test["n"] < MIN_SAMPLES_FOR_ALPHA


def comparison_sentence(name: str, test: dict) -> str:
    """One line a person can read: the verdict at ALPHA, then the numbers."""
    if not _testable(test):
        return f"{name.replace('_', ' ')}: no test ({test.get('note') or 'not enough samples'}; n = {test.get('n')})"
    verdict = (f"too few samples to tell ({MIN_SAMPLES_FOR_ALPHA} needed)" if _too_few(test) else
               "no clear difference" if test["p_value"] >= ALPHA else
               "divergent higher" if test["mean_difference"] > 0 else "divergent lower")
    return f"{verdict}: {_details(name, test)}"


def headline_sentence(comparisons: dict) -> str | None:
    """The research question's answer in one line (the summary's headline)."""
    test = comparisons.get("image_diversity")
    if not _testable(test):
        return None
    if _too_few(test):
        lead = ("Too few samples to tell whether divergent prompts give more or less diverse images than convergent "
                f"ones (n = {test['n']}; a two-sided Wilcoxon signed-rank test needs {MIN_SAMPLES_FOR_ALPHA} or more "
                f"to reach p < {ALPHA:g})")
        return f"{lead}: {_details('image_diversity', test)}"
    if test["p_value"] >= ALPHA:
        lead = "No clear difference in image diversity between divergent and convergent prompts"
    elif test["mean_difference"] > 0:
        lead = "Divergent prompts gave more diverse images than convergent ones"
    else:
        lead = "Divergent prompts gave less diverse images than convergent ones"
    return f"{lead} ({_details('image_diversity', test)})"


METHOD = {
    "unit": "the music sample: each test pairs or compares per-sample values, never single images",
    "equal_size_subsets": (
        "Set measures grow or shift with set size (the Vendi score most), and a sample has 3 convergent but 2 "
        "divergent prompts. So for each sample, both modes are measured on subsets of the same number of prompts "
        "(matched_prompts = the smaller mode's count, 2 by default): image_diversity, vendi_score and "
        "prompt_diversity of a mode are the means over all its matched_prompts-prompt subsets (C(3,2) = 3 for "
        "convergent, the whole set for divergent); a subset keeps every image of its prompts. samples.csv also has "
        "the whole-set values. Means of per-image measures (mean_*) do not depend on set size and use every image."),
    "bootstrap": "percentile bootstrap of the mean difference (scipy.stats.bootstrap), 95 %",
    "paired_test": "Wilcoxon signed-rank test on the per-sample differences (scipy.stats.wilcoxon, two-sided)",
    "effect_sizes": "rank_biserial: matched-pairs rank-biserial correlation (Kerby 2014), −1 … 1; cohens_dz: mean "
                    "difference / SD of the differences",
    "correlations": "Spearman's rho (scipy.stats.spearmanr) between a sample's mean image lightness, chroma or warmth "
                    "and its music's valence, arousal or tempo; paired bootstrap 95 % CI of rho; with fewer than 10 samples "
                    "the p-value is exact (all permutations) instead of the t approximation",
    "major_minor": "major − minor samples (from the tonality feature): difference of mean image measures, bootstrap "
                   "95 % CI, Mann–Whitney U (two-sided), rank-biserial 2U/(n1 n2) − 1",
    "clip_score": "100 × max(cos(CLIP image embedding, CLIP text embedding of the prompt), 0) (the CLIPScore "
                  "convention of torchmetrics); prompts longer than CLIP's 77 tokens are cut there",
    "colour": "CIELAB (scikit-image, sRGB, D65): lightness = mean L*, chroma = mean C*ab, hue = angle of the mean "
              "(a*, b*) in degrees, warmth = mean Ou et al. (2004) warm–cool index −0.5 + 0.02·C*^1.07·cos(h − 50°), "
              "colourfulness = Hasler & Süsstrunk (2003) on 0–255 sRGB",
    "between_prompts_minus_between_seeds": "with several images per prompt, per mode: between_prompts − "
                                           "between_seeds over the samples (mean_first = between prompts, "
                                           "mean_second = between seeds); positive: the prompts differ more than "
                                           "seed noise",
    "emotion": "valence and arousal (−1 … 1) are read from each sample's `emotion` in the prompts file, which "
               "`music2image prompts` writes from the music (mode, tempo, register, loudness, onset rate: "
               "music/mapping.py); a prompts file without it (the upstream shape, e.g. examples/visual_prompts.json) "
               "gives no valence or arousal: music_vs_image.samples_without counts such samples and "
               "music_vs_image.note says so",
    "compared": COMPARED,
}


def missing_emotion_note(samples_without: dict[str, int], samples: int, prompts_file_found: bool) -> str | None:
    """Why the valence and arousal cells are empty and what would fill them, or None when every sample has both."""
    missing = max(samples_without.get(name, 0) for name in ("valence", "arousal"))
    if not missing:
        return None
    if not prompts_file_found:
        why = "no prompts file was found (see the warnings), so there is no music to read them from"
    else:
        why = ("the prompts file gives them no `emotion` (the upstream shape, as in examples/visual_prompts.json, "
               "has only musical_features)")
    if missing == samples:
        which, effect = "any sample", "the valence and arousal cells are empty (no correlation with them)"
    else:
        which = f"{missing} of {samples} samples"
        having = samples - missing
        effect = (f"their valence and arousal cells are empty and the correlations with valence and arousal use "
                  f"only the {having} sample{'s that have' if having != 1 else ' that has'} them")
    return (f"No valence or arousal for {which}: {why}, so {effect}. Prompts written from the "
            "music by `music2image prompts` carry each sample's emotion: generate from such a file (or add "
            "\"emotion\": {\"valence\": …, \"arousal\": …}, each −1 … 1, to every sample of the prompts file) and "
            "evaluate again.")


def read_evaluation(output_dir: str | Path) -> dict | None:
    path = Path(output_dir) / EVALUATION_DIR / EVALUATION_JSON
    try:
        if path.stat().st_size > 64 * 1024 * 1024:
            return None
        document = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def headline(output_dir: str | Path) -> str | None:
    """The headline comparison of OUTPUT_DIR's evaluation (for `summary`), or None when there is none."""
    document = read_evaluation(output_dir)
    text = document.get("headline") if document else None
    return text if isinstance(text, str) else None


def evaluated_at(output_dir: str | Path) -> float | None:
    """When OUTPUT_DIR's image measures were written (images.csv's modification time), or None. An image newer than
    this was made again after `evaluate`: its measures there are the old image's."""
    try:
        return (Path(output_dir) / EVALUATION_DIR / IMAGES_CSV).stat().st_mtime
    except OSError:
        return None


def measured_image_is_current(output_dir: str | Path, image_path: str, measured_at: float) -> bool | None:
    """Whether the image at IMAGE_PATH is still the one `evaluate` measured (written before images.csv, at
    MEASURED_AT): False when it was made again since (`generate --overwrite` or `--replace-changed` keep its name),
    None when there is no such file inside the folder to tell. By modification time, as the gallery's thumbnails are
    kept fresh; the rule of the gallery's measures and of summary's headline."""
    from ..safe_paths import resolves_inside

    source = resolves_inside(Path(output_dir), image_path)
    try:
        return None if source is None else source.stat().st_mtime <= measured_at
    except OSError:
        return None


def remade_since_evaluation(output_dir: str | Path) -> int:
    """How many of the images OUTPUT_DIR's evaluation measured were made again since; 0 without an evaluation."""
    measured_at = evaluated_at(output_dir)
    if measured_at is None:
        return 0
    return sum(measured_image_is_current(output_dir, image_path, measured_at) is False
               for image_path in image_measures(output_dir))


def image_measures(output_dir: str | Path) -> dict[str, dict[str, float]]:
    """image_path → {clip_score, lightness, chroma, hue, warmth, colourfulness} from OUTPUT_DIR's evaluation (for
    the gallery); {} when there is none. Rows or values that do not parse are left out."""
    path = Path(output_dir) / EVALUATION_DIR / IMAGES_CSV
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return {}
    measures: dict[str, dict[str, float]] = {}
    try:
        for row in csv.DictReader(io.StringIO(text)):
            image_path = row.get("image_path")
            if not isinstance(image_path, str) or not image_path:
                continue
            values = {}
            for name in MEASURE_COLUMNS:
                try:
                    value = float(row.get(name) or "nan")
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    values[name] = value
            measures[image_path] = values
    except csv.Error:
        return measures
    return measures
