"""The audio → visual-prompts stage: music files in, a visual-prompts file (the core schema) out.

    >>> from music2image.music import write_prompts_file
    >>> write_prompts_file(["music/"], "generated_prompts/visual_prompts_complete.json")

One way through: collect sources → read & analyse each (features.py) → emotion and descriptors at each prompt's
temperature (mapping.py) → text within 77 CLIP tokens (writer.py) → validate with the core loader → atomic write.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..version import __version__
from ..errors import AudioInputError
from ..progress import tracked
from .features import (
    SUPPORTED_SUFFIXES,
    UNSUPPORTED_AUDIO_SUFFIXES,
    AudioProblem,
    MusicalFeatures,
    analyse,
    read_audio,
)
from .llm import LLMSettings, LLMWriter, with_cache_next_to
from .mapping import EMOTION_SLOTS, Emotion, descriptors, emotion_of, mood_label
from .writer import TransformersWriter, VocabularyWriter, clip_token_count

log = logging.getLogger("music2image")
UPSTREAM_RATE = 16000  # the upstream dataset's .npy records hold 16 kHz audio


@dataclass(frozen=True)
class PromptPlan:
    """How many prompts per sample, at which temperatures (the audio stage's defaults: 3 × 0.4, 2 × 0.8)."""

    convergent: int = 3
    divergent: int = 2
    convergent_temperature: float = 0.4
    divergent_temperature: float = 0.8
    seed: int = 42

    def validate(self) -> "PromptPlan":
        problems = []
        for name in ("convergent", "divergent"):
            if getattr(self, name) < 0:
                problems.append(f"--{name} must be 0 or more, got {getattr(self, name)}")
        if not problems and self.convergent + self.divergent == 0:
            problems.append("--convergent and --divergent are both 0: no prompts to write")
        for name in ("convergent_temperature", "divergent_temperature"):
            value = getattr(self, name)
            if not 0 <= value <= 5:  # NaN fails this too
                problems.append(f"--{name.replace('_', '-')} must be between 0 and 5, got {value}")
        if problems:
            raise AudioInputError("\n".join(problems))
        return self

    def slots(self) -> list[tuple[str, float]]:
        return [("convergent", self.convergent_temperature)] * self.convergent + [
            ("divergent", self.divergent_temperature)
        ] * self.divergent


@dataclass(frozen=True)
class Source:
    """One future sample: an audio file, or one record of an upstream .npy dataset."""

    name: str
    path: Path
    record: int | None = None  # index into the .npy, for dataset records
    dataset: np.ndarray | None = field(default=None, compare=False, repr=False)  # the .npy, unpickled once


def collect_sources(inputs: list[str | os.PathLike], allow_pickle: bool = False) -> list[Source]:
    """Files and folders → sources, each folder's files in sorted order. Every problem is reported at once."""
    problems, sources = [], []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            problems.append(f"{item}: not found")
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
            ignored = sorted(p for p in path.rglob("*") if p.suffix.lower() in UNSUPPORTED_AUDIO_SUFFIXES)
            if ignored:
                log.warning("%s: ignoring %d file(s) in formats not supported here (%s): %s", item, len(ignored),
                            ", ".join(sorted({p.suffix.lower() for p in ignored})), ", ".join(p.name for p in ignored[:5]))
            if not found:
                problems.append(f"{item}: no audio files ({', '.join(SUPPORTED_SUFFIXES)}) in this folder")
            sources += [Source(p.relative_to(path).as_posix(), p) for p in found]
        elif path.suffix.lower() == ".npy":
            if not allow_pickle:
                problems.append(
                    f"{item}: a .npy dataset is loaded with pickle, which can run code from the file; "
                    "add --allow-pickle only if you trust where it came from"
                )
            else:
                sources += _npy_sources(path, problems)
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            sources.append(Source(path.name, path))
        else:
            problems.append(
                f"{item}: {path.suffix or 'no extension'} is not supported; supported: {', '.join(SUPPORTED_SUFFIXES)}, "
                ".npy (upstream dataset, with --allow-pickle)"
                + ("; convert it first, e.g. `ffmpeg -i IN OUT.flac`" if path.suffix.lower() in UNSUPPORTED_AUDIO_SUFFIXES else "")
            )
    if problems:
        raise AudioInputError("\n".join(problems))
    return sources


def _npy_records(path: Path):
    log.warning("%s: loading with allow_pickle=True (this can run code stored in the file)", path)
    try:
        data = np.load(path, allow_pickle=True)
    except (OSError, ValueError, EOFError) as exc:
        raise AudioInputError(f"{path}: cannot be read as a .npy file ({exc})") from None
    if data.dtype != object or data.ndim != 1:
        raise AudioInputError(f"{path}: expected a 1-D array of records with 'audio' and 'audio_meta', got "
                              f"{data.dtype} with shape {data.shape}")
    return data


def _npy_sources(path: Path, problems: list[str]) -> list[Source]:
    try:
        records = _npy_records(path)
    except AudioInputError as exc:
        problems.append(str(exc))
        return []
    return [Source(f"{path.name}[{index}]", path, index, records) for index in range(len(records))]


def _load(source: Source) -> tuple[np.ndarray, int, dict | None]:
    if source.record is None:
        return (*read_audio(source.path), None)
    record = source.dataset[source.record]
    if not isinstance(record, dict) or "audio" not in record:
        raise AudioProblem("record has no 'audio' array")
    meta = record.get("audio_meta")
    rate = int(meta.get("sample_rate", UPSTREAM_RATE)) if isinstance(meta, dict) else UPSTREAM_RATE
    try:
        audio = np.asarray(record["audio"], dtype=np.float32)
    except (TypeError, ValueError):
        raise AudioProblem("record's 'audio' is not an array of numbers") from None
    return audio, rate, _plain(meta)


def _plain(value):
    """JSON-safe copy of upstream metadata (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array of {value.size}>"
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def musical_features_record(features: MusicalFeatures, emotion: Emotion) -> dict:
    """The upstream keys (key, tonality, tempo, mood, dynamic_intensity) first, then ours."""
    loudness = features.loudness_dbfs
    return {
        "key": features.key,
        "tonality": features.tonality,
        "tempo": None if features.tempo is None else round(features.tempo, 2),
        "mood": mood_label(emotion),
        "dynamic_intensity": "soft" if loudness < -30 else "moderate" if loudness < -16 else "loud",
        "tonality_confidence": round(features.mode_confidence, 4),
        "tonality_is_clear": features.mode_is_clear,
        **{k: v for k, v in features.as_dict().items() if k not in ("key", "tonality", "tempo", "mode_confidence")},
    }


def sample_prompts(features: MusicalFeatures, sample_idx: int, plan: PromptPlan, writer) -> tuple[Emotion, list[dict]]:
    emotion = emotion_of(features)
    prompts, drafts = [], []
    for prompt_id, (mode, temperature) in enumerate(plan.slots()):
        rng = np.random.default_rng([plan.seed, sample_idx, prompt_id])  # seeded by (seed, sample_idx, prompt_id)
        chosen = descriptors(emotion, temperature, rng, neutral_mood=not features.mode_is_clear)
        if isinstance(writer, LLMWriter):  # written together below: in parallel, and distinct within the sample
            drafts.append(writer.draft(prompt_id, mode, temperature, chosen, rng))
            continue
        text, used = writer.write(chosen, temperature, rng)
        prompts.append({"prompt_id": prompt_id, "mode": mode, "temperature": temperature, "visual_prompt": text,
                        "descriptors": used, "token_count": clip_token_count(text)})
    if drafts:
        context = {"musical_features": musical_features_record(features, emotion), "emotion": emotion.as_dict()}
        prompts = writer.write_sample(context, drafts)
    return emotion, prompts


def iter_samples(sources: list[Source], plan: PromptPlan, writer) -> Iterator[dict]:
    for sample_idx, source in enumerate(sources):
        sample = {"sample_idx": sample_idx, "source": source.name}
        try:
            audio, rate, meta = _load(source)
            if meta is not None:
                sample["audio_meta"] = meta
            features = analyse(audio, rate)
            emotion, prompts = sample_prompts(features, sample_idx, plan, writer)
        except AudioProblem as exc:
            log.warning("skipping %s: %s", source.name, exc)
            yield {**sample, "error": str(exc), "prompts": []}
            continue
        yield {**sample, "musical_features": musical_features_record(features, emotion),
               "emotion": emotion.as_dict(), "prompts": prompts}


def build_document(inputs: list[str | os.PathLike], plan: PromptPlan | None = None, *, allow_pickle: bool = False,
                   text_model: str | None = None, llm: LLMSettings | None = None, progress: bool = False,
                   progress_interval: float = 30.0) -> dict:
    """The visual-prompts document for `inputs` (files, folders, .npy datasets). With `llm`, a chat model writes
    the text (its answers cached in `llm.cache_dir`, or in memory when that is None). `progress`: a bar on a
    terminal, else a log line every `progress_interval` seconds and at each tenth (see progress.Progress)."""

    plan = (plan or PromptPlan()).validate()
    if text_model and llm:
        raise AudioInputError("--text-model and --llm both choose the writer: give one")
    if llm:
        writer = LLMWriter(llm, tuple(temperature for _, temperature in plan.slots()))
    else:
        writer = TransformersWriter(text_model) if text_model else VocabularyWriter()
    sources = collect_sources(inputs, allow_pickle)
    if llm:
        writer.probe()  # a bad key, model or URL stops here, before minutes of audio analysis
    samples = list(tracked(iter_samples(sources, plan, writer), len(sources), what="files", unit="file",
                           show=progress, interval=progress_interval))
    skipped = [s["sample_idx"] for s in samples if s.get("error")]
    document = {
        "metadata": {
            "generator": f"music2image {__version__} prompts",
            "writer": writer.name,
            "seed": plan.seed,
            "prompts_per_sample": {"convergent": plan.convergent, "divergent": plan.divergent},
            "temperatures": {"convergent": plan.convergent_temperature, "divergent": plan.divergent_temperature},
            "method": "librosa features → valence/arousal (Eerola et al. 2013 cue weights) → palette lightness, "
                      "saturation, warmth (Palmer et al. 2013) → softmax sampling of descriptors at each "
                      "prompt's temperature",
            "total_samples": len(samples),
            "skipped_samples": len(skipped),
        },
        "samples": samples,
    }
    if llm:
        document["metadata"]["llm"] = writer.metadata()
    return document


def write_prompts_file(inputs: list[str | os.PathLike], output: str | os.PathLike, plan: PromptPlan | None = None, *,
                       allow_pickle: bool = False, text_model: str | None = None, llm: LLMSettings | None = None,
                       overwrite: bool = False, progress: bool = False, progress_interval: float = 30.0) -> dict:
    """Analyse `inputs` and write the visual-prompts file atomically. The same inputs and settings give the same
    bytes, so re-running is harmless; a different existing file is kept unless `overwrite`. With `llm`, its
    answers are cached beside the file (OUTPUT_STEM.llm-cache/) unless `llm.cache_dir` says where."""
    from ..outputs import atomic_write_bytes
    from ..prompts import load_prompts

    output = Path(output)
    if output.is_dir():
        raise AudioInputError(f"--output {output}: is a folder; give a file name ending in .json")
    if output.exists() and not overwrite and not os.access(output, os.R_OK):
        raise AudioInputError(f"--output {output}: exists and cannot be read")
    if llm:
        llm = with_cache_next_to(llm, output)
    document = build_document(inputs, plan, allow_pickle=allow_pickle, text_model=text_model, llm=llm,
                              progress=progress, progress_interval=progress_interval)
    load_prompts(document)  # the image stage's own loader must accept what we write
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if output.exists() and output.read_bytes() != data and not overwrite:
        raise AudioInputError(
            f"--output {output}: already exists with other prompts; add --overwrite to replace it, "
            "or choose another --output"
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output, data)
    except OSError as exc:
        from ..errors import DiskError

        raise DiskError(f"--output {output}: cannot be written ({exc.strerror or exc})") from exc
    return document


__all__ = ["PromptPlan", "LLMSettings", "build_document", "write_prompts_file", "collect_sources", "EMOTION_SLOTS"]
