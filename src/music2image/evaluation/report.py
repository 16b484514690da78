"""report.html: the evaluation's answers for people, with Matplotlib plots embedded as PNG data URIs, so the page
works offline from file:// and can be moved or mailed alone. Rendered by Jinja2 with autoescaping on: prompts and
musical features are text, never markup.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from .analysis import COLOUR_MEASURES, FIRST_MODE, MUSIC_FEATURES, SECOND_MODE
from .documents import ALPHA, comparison_sentence

MODE_COLOURS = {SECOND_MODE: "#1f5aa6", FIRST_MODE: "#b5451b"}  # as the gallery and grids colour the two modes
DISTRIBUTIONS = [("image_diversity_matched", "image diversity"), ("vendi_score_matched", "Vendi score"),
                 ("prompt_diversity_matched", "prompt diversity"), ("mean_clip_score", "CLIP score"),
                 ("mean_lightness", "lightness L*"), ("mean_chroma", "chroma C*"), ("mean_warmth", "warmth"),
                 ("mean_colourfulness", "colourfulness")]


def _value(row, name: str):
    return row.means[name[5:]] if name.startswith("mean_") else getattr(row, name)


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(rows: int, columns: int, width: float = 3.2, height: float = 2.8):
    from matplotlib.figure import Figure  # a Figure of its own: no pyplot, no global state, no display needed

    figure = Figure(figsize=(columns * width, rows * height))
    # Fixed margins: an automatic layout engine measured every label and took most of the report's time.
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9, wspace=0.4, hspace=0.45)
    return figure, figure.subplots(rows, columns, squeeze=False)


def distributions_plot(samples) -> str | None:
    modes = [m for m in (SECOND_MODE, FIRST_MODE) if any(row.mode == m for row in samples)]
    if not modes:
        return None
    figure, axes = _figure(2, 4)
    for axis, (name, title) in zip(axes.flat, DISTRIBUTIONS):
        values = [[v for row in samples if row.mode == mode and (v := _value(row, name)) is not None] for mode in modes]
        shown = [(mode, v) for mode, v in zip(modes, values) if v]
        if shown:
            axis.boxplot([v for _, v in shown], tick_labels=[mode for mode, _ in shown], widths=0.5, showfliers=False)
            for position, (mode, v) in enumerate(shown, start=1):
                jitter = np.random.default_rng(position).uniform(-0.12, 0.12, len(v))
                axis.scatter(position + jitter, v, s=10, alpha=0.6, color=MODE_COLOURS.get(mode, "#555"))
        axis.set_title(title, fontsize=10)
    return _png(figure)


def paired_plot(samples) -> str | None:
    by_sample: dict[int, dict[str, object]] = {}
    for row in samples:
        by_sample.setdefault(row.sample_idx, {})[row.mode] = row
    pairs = [modes for modes in by_sample.values() if FIRST_MODE in modes and SECOND_MODE in modes]
    if not pairs:
        return None
    figure, axes = _figure(1, 3)
    for axis, (name, title) in zip(axes.flat, [DISTRIBUTIONS[0], DISTRIBUTIONS[1], DISTRIBUTIONS[3]]):
        for modes in pairs:
            convergent, divergent = _value(modes[SECOND_MODE], name), _value(modes[FIRST_MODE], name)
            if convergent is not None and divergent is not None:
                axis.plot([0, 1], [convergent, divergent], color=MODE_COLOURS[FIRST_MODE if divergent > convergent
                                                                               else SECOND_MODE],
                          alpha=0.5, marker="o", markersize=3)
        axis.set_xticks([0, 1], [SECOND_MODE, FIRST_MODE])
        axis.set_xlim(-0.3, 1.3)
        axis.set_title(f"{title}, per sample", fontsize=10)
    return _png(figure)


def music_plot(music) -> str | None:
    features = [f for f in MUSIC_FEATURES if any(s.features[f] is not None for s in music)]
    if not features:
        return None
    colours = {"major": "#d08a00", "minor": "#3b4cc0", None: "#777777"}
    figure, axes = _figure(len(COLOUR_MEASURES), len(features), 3.0, 2.4)
    legend = {}
    for row, measure in enumerate(COLOUR_MEASURES):
        for column, feature in enumerate(features):
            axis = axes[row, column]
            points = [(s.features[feature], s.means[measure], s.tonality) for s in music if s.features[feature] is not None]
            for tonality, colour in colours.items():
                chosen = [(x, y) for x, y, t in points if t == tonality]
                if chosen:
                    legend[tonality or "mode unknown"] = axis.scatter(*zip(*chosen), s=12, color=colour, alpha=0.75)
            axis.set_xlabel(feature, fontsize=9)
            axis.set_ylabel(measure, fontsize=9)
    figure.legend(list(legend.values()), list(legend), loc="upper center", ncols=len(legend), fontsize=9)
    return _png(figure)


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["number"] = lambda v, digits=3: "–" if v is None else f"{v:.{digits}f}"
    environment.filters["p"] = lambda v: "–" if v is None else f"{v:.3g}"
    environment.filters["cell"] = lambda v: f"{v:.4g}" if isinstance(v, float) else v
    return environment


def report_html(result) -> str:
    document = result.document
    comparisons = document["divergent_vs_convergent"]
    music_columns = [name for name in ("key", "tonality", "tempo", "valence", "arousal", "mood")
                     if any(name in image.music for image in result.images)]
    sample_music = {}
    for image in result.images:
        sample_music.setdefault(image.entry.sample_idx, image.music)
    return _environment().get_template("report.html.j2").render(
        document=document,
        output_dir=str(result.output_dir),
        alpha=ALPHA,
        comparisons=[(name, test, comparison_sentence(name, test), document["method"]["compared"].get(name, ""))
                     for name, test in comparisons.items()],
        spearman=document["music_vs_image"]["spearman"],
        major_minor=document["music_vs_image"]["major_minus_minor"],
        features=list(MUSIC_FEATURES),
        samples=result.samples,
        sample_music=sample_music,
        music_columns=music_columns,
        plots=[(title, explanation, uri) for title, explanation, uri in [
            ("Per-mode distributions (one point per sample)",
             "Each box holds one mode's values over the samples (median, quartiles, whiskers to 1.5 × IQR); each dot "
             "is a sample, blue for convergent, red-brown for divergent.", distributions_plot(result.samples)),
            ("Per sample: convergent → divergent",
             "One line per sample, from its convergent value to its divergent one: red-brown where the divergent "
             "value is higher, blue where it is lower.", paired_plot(result.samples)),
            ("Image colour vs the music (one point per sample)",
             "Each point is a sample: the mean colour of its images against its music's valence, arousal and "
             "tempo; orange for major, blue for minor.", music_plot(result.music)),
        ] if uri],
    )
