"""`evaluate(output_dir)`: measure a finished output folder and write OUTPUT_DIR/evaluation/."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..version import __version__
from ..errors import DiskError, Music2ImageError, OutputDirError, SettingsError
from ..outputs import LOG_NAME, atomic_write_bytes, atomic_write_json, now_iso
from ..safe_paths import creation_problem
from . import documents
from .analysis import (
    MUSIC_FEATURES,
    ImageMeasures,
    MusicSample,
    SampleModeMeasures,
    compare_modes,
    prompts_vs_seeds,
    music_samples,
    music_vs_image,
    sample_mode_measures,
)
from .colour import colour_measures
from .embeddings import DEFAULT_CLIP_MODEL, ClipEmbedder, EmbeddingCache, clip_score, resolve_clip_model, sha256_of
from .folder import MAX_IMAGE_BYTES, ImageEntry, read_folder
from .statistics import Correlation, GroupDifference, PairedTest

log = logging.getLogger("music2image")

DEFAULT_BOOTSTRAP = 2000
PROGRESS_EVERY_SECONDS = 30


@dataclass
class EvaluationResult:
    """What `evaluate()` returns: every measure, every answer, and what was written."""

    output_dir: Path
    evaluation_dir: Path
    clip_model: str
    model_key: str
    images: list[ImageMeasures]
    samples: list[SampleModeMeasures]
    divergent_vs_convergent: dict[str, PairedTest]
    prompts_vs_seeds: dict[str, PairedTest]  # mode → between_prompts − between_seeds (several images per prompt)
    correlations: dict[str, dict[str, Correlation]]  # colour measure → music feature → Spearman
    major_minor: dict[str, GroupDifference]
    music: list[MusicSample]
    embedded_now: int  # images whose embedding was computed by this call
    embeddings_from_cache: int  # images whose embedding came from the cache
    warnings: list[str] = field(default_factory=list)
    document: dict = field(default_factory=dict)  # evaluation.json
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step: load, images, texts, ...

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.evaluation_dir / name for name in (documents.IMAGES_CSV, documents.SAMPLES_CSV,
                                                               documents.EVALUATION_JSON, documents.REPORT_HTML)}

    @property
    def headline(self) -> str | None:
        return self.document.get("headline")


def _device(requested: str) -> str:
    from ..engine import available_device

    return available_device(requested)


def evaluate(output_dir: str | os.PathLike, clip_model: str = DEFAULT_CLIP_MODEL, *,
             prompts_file: str | os.PathLike | None = None, batch_size: int | None = None,
             bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0, device: str = "auto",
             progress: bool | None = None) -> EvaluationResult:
    """Measure the images of OUTPUT_DIR and answer: are divergent images more diverse, do images follow their
    prompts, does colour follow the music? Writes OUTPUT_DIR/evaluation/{images.csv, samples.csv,
    evaluation.json, report.html} and an embedding cache there; returns the same as an EvaluationResult.

    batch_size: images per CLIP call (default 64 on a GPU, 8 on a CPU); bootstrap: resamples per confidence
    interval; seed: for the bootstrap (and prompt subsets past 200); progress: None = a bar on a terminal only.
    """
    # 1. Check every input before loading anything: the folder, the numbers, the CLIP model (nothing written yet).
    output_dir = Path(output_dir)
    problems = []
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        problems.append(f"--batch-size {batch_size!r}: must be a whole number, 1 or more")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 100:
        problems.append(f"--bootstrap {bootstrap!r}: must be a whole number, 100 or more (resamples per interval)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        problems.append(f"--seed {seed!r}: must be a whole number, 0 or more")
    if problems:
        raise SettingsError(problems)
    folder = read_folder(output_dir, prompts_file)
    evaluation_dir = output_dir / documents.EVALUATION_DIR
    if evaluation_dir.is_symlink() or (evaluation_dir.exists() and not evaluation_dir.is_dir()):
        raise Music2ImageError(f"{evaluation_dir}: exists but is not a plain folder (a link or a file); move it away")
    # A folder we may not write into (read-only, another user's) is said now, not as a traceback after every image
    # was embedded (nothing is created here; an existing folder's own permission is what creation_problem checks).
    problem = creation_problem(evaluation_dir)
    if problem:
        raise OutputDirError(f"{evaluation_dir}: cannot write the evaluation there: {problem}; nothing was written")
    if not folder.entries:
        skipped = [w for w in folder.warnings if w.startswith(LOG_NAME)]
        unsaved = (f"; its {folder.unsaved_images} images were made with --no-save, so there are no files: "
                   "generate them without --no-save" if folder.unsaved_images else "")
        raise Music2ImageError(f"{output_dir}: the log lists no successful image to evaluate"
                               + (f" ({len(skipped)} entries skipped, e.g. {skipped[0]})" if skipped else "") + unsaved)
    source = resolve_clip_model(clip_model)
    device = _device(device)

    # 2. Load CLIP (a bad model is still an error with nothing written) and the embeddings of earlier runs.
    clock = _Clock()
    embedder = ClipEmbedder(source, device)
    batch_size = batch_size or (64 if device.startswith("cuda") else 8)
    cache = EmbeddingCache.load(evaluation_dir, embedder.model_key, embedder.dimension)
    warnings = list(folder.warnings)
    clock.lap("load")
    log.info("evaluate: %d images in %s, CLIP %s on %s", len(folder.entries), output_dir, clip_model, device)

    # 3. Per image: file hash, colour, CLIP image embedding (cached by hash, else computed in batches).
    measured, embedded_now = _measure_images(output_dir, folder.entries, embedder, cache, batch_size, warnings,
                                             progress)
    clock.lap("images")

    # 4. Prompts: CLIP text embeddings (cached by the text's hash), then each image's CLIP score.
    texts = sorted({entry.visual_prompt for entry, _, _, _ in measured})
    text_embeddings = _embed_texts(texts, embedder, cache, batch_size)
    images = [ImageMeasures(entry, folder.music.get(entry.sample_idx, {}), digest,
                            clip_score(embedding, text_embeddings[entry.visual_prompt]),
                            colour.lightness, colour.chroma, colour.hue, colour.warmth, colour.colourfulness, embedding)
              for entry, digest, colour, embedding in measured]
    clock.lap("texts")

    # 5. Per (sample, mode): diversity of images and prompts; then the answers.
    samples = sample_mode_measures(images, text_embeddings, seed)
    comparisons = compare_modes(samples, bootstrap, seed)
    split = prompts_vs_seeds(samples, bootstrap, seed)
    music = music_samples(images)
    correlations, major_minor = music_vs_image(music, bootstrap, seed)
    result = EvaluationResult(output_dir, evaluation_dir, clip_model, embedder.model_key, images, samples, comparisons,
                              split, correlations, major_minor, music, embedded_now, len(images) - embedded_now, warnings)
    result.document = _document(result, folder, bootstrap, seed, device)
    clock.lap("analysis")

    # 6. Write: the cache first (the expensive part), then the tables, the report and last the answers, each
    # atomically. The report's plots are drawn before the tables are written (most of this step's time), so that a
    # Ctrl-C while they are drawn leaves no tables or answers without their report; evaluation.json comes last
    # because `summary` and the gallery take it to mean "evaluated".
    from . import report

    try:
        evaluation_dir.mkdir(exist_ok=True)
        cache.save()
    except OSError as exc:
        raise DiskError(f"{evaluation_dir}: cannot write the evaluation ({exc.strerror or exc})") from exc
    report_page = report.report_html(result).encode("utf-8")
    try:
        atomic_write_bytes(evaluation_dir / documents.IMAGES_CSV, documents.images_csv(images))
        atomic_write_bytes(evaluation_dir / documents.SAMPLES_CSV, documents.samples_csv(samples))
        atomic_write_bytes(evaluation_dir / documents.REPORT_HTML, report_page)
        atomic_write_json(evaluation_dir / documents.EVALUATION_JSON, result.document)
    except OSError as exc:  # disk full, or the folder changed under us: each file is whole or absent
        raise DiskError(f"{evaluation_dir}: cannot write the evaluation ({exc.strerror or exc})") from exc
    clock.lap("write")
    result.seconds = clock.seconds
    log.info("evaluate: %d images (%d embedded now) in %.1f s after loading CLIP: %s", len(images), embedded_now,
             sum(clock.seconds.values()) - clock.seconds["load"],
             ", ".join(f"{name} {value:.1f} s" for name, value in clock.seconds.items()))
    for warning in warnings[:20]:
        log.warning("warning: %s", warning)
    if len(warnings) > 20:
        log.warning("... and %d more warnings (all in evaluation.json)", len(warnings) - 20)
    return result


class _Clock:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._last
        self._last = now


def _read_image(output_dir: Path, entry: ImageEntry):
    """(sha256, RGB array, PIL image) of an image file, or a reason it cannot be used."""
    from PIL import Image

    path = output_dir / entry.image_path
    try:
        if not path.is_file():
            return f"{entry.image_path}: missing"
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return f"{entry.image_path}: larger than {MAX_IMAGE_BYTES >> 20} MiB, not read"
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"{entry.image_path}: cannot read the image ({exc})"
    return sha256_of(data), np.asarray(image), image


def _measure_images(output_dir: Path, entries: list[ImageEntry], embedder: ClipEmbedder, cache: EmbeddingCache,
                    batch_size: int, warnings: list[str], progress: bool | None):
    from tqdm import tqdm

    show_bar = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(total=len(entries), unit="img", disable=not show_bar, dynamic_ncols=True)
    measured, embedded_now, last_report = [], 0, time.monotonic()
    try:
        for start in range(0, len(entries), batch_size):
            batch, to_embed = [], []
            for entry in entries[start:start + batch_size]:
                read = _read_image(output_dir, entry)
                if isinstance(read, str):
                    warnings.append(read + "; skipped")
                    continue
                digest, pixels, image = read
                batch.append((entry, digest, colour_measures(pixels)))
                if cache.get("image", digest) is None and digest not in {d for d, _ in to_embed}:
                    to_embed.append((digest, image))
            if to_embed:
                vectors = embedder.image_embeddings([image for _, image in to_embed])
                for (digest, _), vector in zip(to_embed, vectors):
                    cache.put("image", digest, vector)
                embedded_now += len(to_embed)
            measured += [(entry, digest, colour, cache.get("image", digest)) for entry, digest, colour in batch]
            bar.update(min(batch_size, len(entries) - start))
            if progress is not False and not show_bar and time.monotonic() - last_report > PROGRESS_EVERY_SECONDS:
                last_report = time.monotonic()
                log.info("progress: %d/%d images", bar.n, len(entries))
    finally:
        bar.close()
    return measured, embedded_now


def _embed_texts(texts: list[str], embedder: ClipEmbedder, cache: EmbeddingCache, batch_size: int):
    digests = {text: sha256_of(text.encode("utf-8")) for text in texts}
    missing = [text for text in texts if cache.get("text", digests[text]) is None]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start:start + batch_size]
        for text, vector in zip(chunk, embedder.text_embeddings(chunk)):
            cache.put("text", digests[text], vector)
    return {text: cache.get("text", digests[text]) for text in texts}


def _document(result: EvaluationResult, folder, bootstrap: int, seed: int, device: str) -> dict:
    comparisons = {name: test.as_dict() for name, test in result.divergent_vs_convergent.items()}
    images_per_prompt = {}
    for image in result.images:
        key = (image.entry.sample_idx, image.entry.prompt_id)
        images_per_prompt[key] = images_per_prompt.get(key, 0) + 1
    samples_without = {feature: sum(1 for s in result.music if s.features[feature] is None)
                       for feature in MUSIC_FEATURES}
    return {
        "headline": documents.headline_sentence(comparisons),
        "answers": [documents.comparison_sentence(name, test) for name, test in comparisons.items()],
        "divergent_vs_convergent": comparisons,
        "between_prompts_minus_between_seeds": {mode: test.as_dict() for mode, test in result.prompts_vs_seeds.items()},
        "music_vs_image": {
            "spearman": {measure: {feature: c.as_dict() for feature, c in by_feature.items()}
                         for measure, by_feature in result.correlations.items()},
            "major_minus_minor": {measure: d.as_dict() for measure, d in result.major_minor.items()},
            "samples_without": samples_without,
            "note": documents.missing_emotion_note(samples_without, len(result.music), folder.prompts_file is not None),
        },
        "counts": {
            "images_in_log": len(folder.entries) + folder.failed_images,
            "images_evaluated": len(result.images),
            "failed_in_log": folder.failed_images,
            "samples": len({image.entry.sample_idx for image in result.images}),
            "samples_with_music": sum(1 for s in result.music if any(v is not None for v in s.features.values())
                                      or s.tonality),
            "images_per_prompt": sorted(set(images_per_prompt.values())),
            "embedded_now": result.embedded_now,
            "embeddings_from_cache": result.embeddings_from_cache,
        },
        "method": {**documents.METHOD, "bootstrap_resamples": bootstrap, "seed": seed, "alpha": documents.ALPHA},
        "clip_model": result.clip_model,
        "clip_model_key": result.model_key,
        "device": device,
        "prompts_file": None if folder.prompts_file is None else str(folder.prompts_file),
        "warnings": result.warnings,
        "music2image_version": __version__,
        "created": now_iso(),
    }
