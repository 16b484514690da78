"""The audio → visual-prompts stage as one library function: music files in, a visual-prompts file (the core schema)
out. `music2image prompts` and `music2image run` both call `write_prompts_file`.

    >>> from music2image.music import write_prompts_file
    >>> write_prompts_file(["music/"], "generated_prompts/visual_prompts_complete.json")

One way through: 1. collect sources → 2. read each (sources.py; long files as windows) and analyse it (features.py)
→ 3. emotion and descriptors at each prompt's temperature, no two prompts of a sample alike (mapping.py) → 4. text
within 77 CLIP tokens (writer.py) → 5. validate with the core loader → 6. atomic write.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..version import __version__
from ..errors import AudioInputError
from ..safe_paths import creation_problem
from ..settings import MAX_SEED
from .analysis import Problem, analyse_sources, auto_jobs
from .analysis_cache import AnalysisCache, cache_path_for
from .features import AudioProblem, MusicalFeatures
from .mapping import Emotion, distinct_descriptors, emotion_of, mood_label
from .sources import AnalysedAudio, Source, collect_sources
from ..progress import tracked
from .llm import LLMSettings, LLMWriter, with_cache_next_to
from .writer import TransformersWriter, VocabularyWriter, clip_token_count

log = logging.getLogger("music2image")
# The one default prompt seed, for the library and the CLI alike (the CLI's --seed defaults to it). It was 42 here
# and 0 on the CLI; 0 was kept so that CLI output stays byte-identical.
DEFAULT_PROMPT_SEED = 0
# Each prompt of a sample takes ~10 ms to draw distinct from the others (and then an image): 1000 is past any study's
# design, while --convergent 1000000 ran for hours per sample and 10^20 crashed numpy (OverflowError).
MAX_PROMPTS_PER_SAMPLE = 1000


@dataclass(frozen=True)
class PromptPlan:
    """How many prompts per sample, at which temperatures (the audio stage's defaults: 3 × 0.4, 2 × 0.8)."""

    convergent: int = 3
    divergent: int = 2
    convergent_temperature: float = 0.4
    divergent_temperature: float = 0.8
    seed: int = DEFAULT_PROMPT_SEED

    def validate(self) -> "PromptPlan":
        problems = []
        for name in ("convergent", "divergent"):
            if getattr(self, name) < 0:
                problems.append(f"--{name} must be 0 or more, got {getattr(self, name)}")
        if not problems and self.convergent + self.divergent == 0:
            problems.append("--convergent and --divergent are both 0: no prompts to write")
        if not problems and self.convergent + self.divergent > MAX_PROMPTS_PER_SAMPLE:
            problems.append(f"--convergent and --divergent ask for {self.convergent + self.divergent} prompts per "
                            f"sample; at most {MAX_PROMPTS_PER_SAMPLE}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            problems.append(f"--seed must be a whole number from 0 to {MAX_SEED} (as for images), got {self.seed!r}")
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
class PromptRecord:
    prompt_id: int
    mode: str  # "convergent" or "divergent"
    temperature: float
    visual_prompt: str
    descriptors: dict
    token_count: int
    provenance: dict = field(default_factory=dict)  # an LLM writer's: writer, model, temperature_sent, seed, ...

    def as_dict(self) -> dict:
        return {"prompt_id": self.prompt_id, "mode": self.mode, "temperature": self.temperature,
                "visual_prompt": self.visual_prompt, "descriptors": self.descriptors, "token_count": self.token_count,
                **self.provenance}

    @classmethod
    def from_llm(cls, record: dict) -> "PromptRecord":
        fields = ("prompt_id", "mode", "temperature", "visual_prompt", "descriptors", "token_count")
        return cls(*(record[name] for name in fields), {k: v for k, v in record.items() if k not in fields})


@dataclass(frozen=True)
class SampleRecord:
    """One source's entry in the prompts file: its prompts, or the reason it has none."""

    sample_idx: int
    source: str
    audio_meta: dict | None = None
    analysed_audio: AnalysedAudio | None = None
    features: MusicalFeatures | None = None
    emotion: Emotion | None = None
    prompts: tuple[PromptRecord, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict:
        record = {"sample_idx": self.sample_idx, "source": self.source}
        if self.audio_meta is not None:
            record["audio_meta"] = self.audio_meta
        if self.error is not None:
            return {**record, "error": self.error, "prompts": []}
        if self.analysed_audio is not None and not self.analysed_audio.whole:
            record["analysed_audio"] = self.analysed_audio.as_dict()
        return {**record, "musical_features": musical_features_record(self.features, self.emotion),
                "emotion": self.emotion.as_dict(), "prompts": [p.as_dict() for p in self.prompts]}


@dataclass(frozen=True)
class PromptsDocument:
    """What the stage wrote: settings, writer, and one record per source."""

    plan: PromptPlan
    writer_name: str
    samples: list[SampleRecord] = field(default_factory=list)
    llm: dict | None = None  # the LLM writer's metadata (provider, model, base URL, what it sends)

    @property
    def skipped(self) -> int:
        return sum(sample.error is not None for sample in self.samples)

    @property
    def prompt_count(self) -> int:
        return sum(len(sample.prompts) for sample in self.samples)

    def as_dict(self) -> dict:
        plan = self.plan
        return {
            "metadata": {
                "generator": f"music2image {__version__} prompts",
                "writer": self.writer_name,
                "seed": plan.seed,
                "prompts_per_sample": {"convergent": plan.convergent, "divergent": plan.divergent},
                "temperatures": {"convergent": plan.convergent_temperature, "divergent": plan.divergent_temperature},
                "method": "librosa features → valence/arousal (Eerola et al. 2013 cue weights) → palette lightness, "
                          "saturation, warmth (Palmer et al. 2013) → softmax sampling of descriptors at each "
                          "prompt's temperature",
                "total_samples": len(self.samples),
                "skipped_samples": self.skipped,
                **({"llm": self.llm} if self.llm else {}),
            },
            "samples": [sample.as_dict() for sample in self.samples],
        }


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


def sample_prompts(features: MusicalFeatures, sample_idx: int, plan: PromptPlan,
                   writer) -> tuple[Emotion, list[PromptRecord]]:
    """A sample's prompts, each seeded by (seed, sample_idx, prompt_id); no two alike unless the temperature is 0."""
    emotion = emotion_of(features)
    slots = plan.slots()
    rngs = [np.random.default_rng([plan.seed, sample_idx, prompt_id]) for prompt_id in range(len(slots))]
    chosen = distinct_descriptors(emotion, [temperature for _, temperature in slots], rngs,
                                  neutral_mood=not features.mode_is_clear)
    if isinstance(writer, LLMWriter):  # written together: in parallel, and distinct within the sample
        drafts = [writer.draft(prompt_id, mode, temperature, phrases, rng)
                  for prompt_id, ((mode, temperature), phrases, rng) in enumerate(zip(slots, chosen, rngs))]
        context = {"musical_features": musical_features_record(features, emotion), "emotion": emotion.as_dict()}
        return emotion, [PromptRecord.from_llm(record) for record in writer.write_sample(context, drafts)]
    prompts = []
    for prompt_id, ((mode, temperature), phrases, rng) in enumerate(zip(slots, chosen, rngs)):
        text, used = writer.write(phrases, temperature, rng)
        prompts.append(PromptRecord(prompt_id, mode, temperature, text, used, clip_token_count(text)))
    return emotion, prompts


def iter_samples(sources: list[Source], plan: PromptPlan, writer, jobs: int = 1,
                 cache: AnalysisCache | None = None) -> Iterator[SampleRecord]:
    analyses = analyse_sources(sources, jobs, cache)
    with closing(analyses):  # a stop while prompts are written still keeps the analyses the workers are finishing
        for sample_idx, analysis in enumerate(analyses):  # to its end: a complete run tidies the cache (keep_only)
            source = sources[sample_idx]
            if isinstance(analysis, Problem):
                log.warning("skipping %s: %s", source.name, analysis.reason)
                yield SampleRecord(sample_idx, source.name, audio_meta=analysis.meta, error=analysis.reason)
                continue
            try:
                emotion, prompts = sample_prompts(analysis.features, sample_idx, plan, writer)
            except AudioProblem as exc:  # the writer could not write this sample (llm.SampleWritingProblem)
                log.warning("skipping %s: %s", source.name, exc)
                yield SampleRecord(sample_idx, source.name, audio_meta=analysis.meta, error=str(exc))
                continue
            analysed = analysis.analysed
            if not analysed.whole:
                log.info("%s: %.0f s long; analysed %d windows of %.0f s", source.name, analysed.source_seconds,
                         len(analysed.windows), analysed.windows[0][1])
            yield SampleRecord(sample_idx, source.name, analysis.meta, analysed, analysis.features, emotion,
                               tuple(prompts))


def build_prompts(inputs: list[str | os.PathLike], plan: PromptPlan | None = None, *, allow_pickle: bool = False,
                  text_model: str | None = None, llm: LLMSettings | None = None, writer=None,
                  jobs: int | None = 1, analysis_cache: str | os.PathLike | None = None,
                  progress: bool = False, progress_interval: float = 30.0) -> PromptsDocument:
    """The typed prompts document for `inputs` (files, folders, .npy datasets). `writer` (anything with `name` and
    `write(descriptors, temperature, rng) -> (text, descriptors)`) overrides the default vocabulary writer; with
    `llm`, a chat model writes the text (answers cached in `llm.cache_dir`, or in memory when that is None).
    `jobs`: processes analysing the audio (1: this one; None: one per CPU, as memory allows; the result is the same
    for any number). Workers are started by spawn, which imports the caller's main module again: a script that
    asks for workers must call this under `if __name__ == "__main__":` (the CLI's entry points do).
    `analysis_cache`: a JSON-lines file where each analysis is kept as it is made, so that a second call (after an
    interruption, or with another plan) analyses only what it lacks (analysis.py).
    `progress`: a bar on a terminal, else a log line every `progress_interval` seconds and at each tenth."""

    plan = (plan or PromptPlan()).validate()
    if sum(option is not None for option in (text_model, llm, writer)) > 1:
        raise AudioInputError("--text-model and --llm both choose the writer: give one")
    if llm is not None:
        writer = LLMWriter(llm, tuple(temperature for _, temperature in plan.slots()))
    elif writer is None:
        writer = TransformersWriter(text_model) if text_model else VocabularyWriter()
    sources = collect_sources(inputs, allow_pickle)
    if llm is not None:
        writer.probe()  # a bad key, model or URL stops here, before minutes of audio analysis
    if jobs is not None and jobs < 1:
        raise AudioInputError(f"jobs must be at least 1, got {jobs}")
    cache = AnalysisCache(None if analysis_cache is None else Path(analysis_cache))
    if len(cache):
        log.info("%s: %d analyses kept from an earlier run", analysis_cache, len(cache))
    try:
        samples = list(tracked(iter_samples(sources, plan, writer, jobs or auto_jobs(len(sources)), cache),
                               len(sources), what="files", unit="file", show=progress, interval=progress_interval))
    finally:
        cache.close()
    return PromptsDocument(plan, writer.name, samples, writer.metadata() if llm is not None else None)


def build_document(inputs: list[str | os.PathLike], plan: PromptPlan | None = None, **options) -> dict:
    """The visual-prompts document for `inputs`, as the JSON-ready dict that `write_prompts_file` writes."""
    return build_prompts(inputs, plan, **options).as_dict()


def _refuse_unwritable(output: Path, output_flag: str) -> None:
    """Say before the analysis, not after it (an hour, for a big folder), that --output cannot be written: a file
    in the way of its folder, or no permission to write there. Nothing is created here."""
    problem = creation_problem(output.parent)
    if problem:
        raise AudioInputError(f"{output_flag} {output}: cannot be written: {problem}; nothing was analysed")


def write_prompts_file(inputs: list[str | os.PathLike], output: str | os.PathLike, plan: PromptPlan | None = None, *,
                       allow_pickle: bool = False, text_model: str | None = None, llm: LLMSettings | None = None,
                       writer=None, overwrite: bool = False, jobs: int | None = 1, cache_analyses: bool = True,
                       output_flag: str = "--output",
                       progress: bool = False, progress_interval: float = 30.0) -> PromptsDocument:
    """Analyse `inputs` and write the visual-prompts file atomically. The same inputs and settings give the same
    bytes, so re-running is harmless; a different existing file is kept unless `overwrite`. Each analysis is kept
    beside the file as it is made (OUTPUT_STEM.analysis-cache.jsonl, unless not `cache_analyses`), so an
    interrupted call resumes. With `llm`, its answers are cached beside the file (OUTPUT_STEM.llm-cache/) unless
    `llm.cache_dir` says where. `output_flag`: what messages call `output` (`run` says --prompts-file)."""
    from ..outputs import atomic_write_bytes
    from ..prompts import load_prompts

    output = Path(output)
    if output.is_dir():
        raise AudioInputError(f"{output_flag} {output}: is a folder; give a file name ending in .json")
    if output.exists() and not output.is_file():  # --overwrite renamed our file over /dev/null, as root
        raise AudioInputError(f"{output_flag} {output}: is not a regular file (a device or a pipe); give a file name")
    if output.exists() and not overwrite and not os.access(output, os.R_OK):
        raise AudioInputError(f"{output_flag} {output}: exists and cannot be read")
    if output.is_file() and any(Path(item).is_file() and output.samefile(item) for item in inputs):
        raise AudioInputError(f"{output_flag} {output}: is one of the audio inputs; --overwrite would replace it")
    _refuse_unwritable(output, output_flag)
    if llm is not None:
        llm = with_cache_next_to(llm, output)
    document = build_prompts(inputs, plan, allow_pickle=allow_pickle, text_model=text_model, llm=llm, writer=writer,
                             jobs=jobs, analysis_cache=cache_path_for(output) if cache_analyses else None,
                             progress=progress, progress_interval=progress_interval)
    as_json = document.as_dict()
    load_prompts(as_json)  # the image stage's own loader must accept what we write
    data = (json.dumps(as_json, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if output.exists() and output.read_bytes() != data and not overwrite:
        kept = cache_path_for(output)
        again = (f" (the analyses are kept in {kept.name}: with --overwrite the audio is not analysed again)"
                 if cache_analyses and kept.is_file() and not kept.is_symlink() else "")
        raise AudioInputError(
            f"{output_flag} {output}: already exists with other prompts; add --overwrite to replace it{again}, "
            f"or choose another {output_flag}"
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output, data)
    except OSError as exc:
        from ..errors import DiskError

        raise DiskError(f"{output_flag} {output}: cannot be written ({exc.strerror or exc})") from exc
    return document
