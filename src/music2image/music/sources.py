"""Where the music comes from: files and folders → sources, and each source read as mono audio, in bounded memory.

A long file is not read whole: past MAX_ANALYSED_SECONDS, EXCERPT_WINDOWS windows spread evenly over it are read
(with soundfile, block by block, seeking past the rest) and analysed as one excerpt; the sample records which
(`analysed_audio`). An hour of 44.1 kHz stereo then costs what five minutes cost (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AudioInputError
from ..untrusted_json import without_lone_surrogates
from .features import AudioProblem

log = logging.getLogger("music2image")

# What libsndfile reads here (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF). Others (m4a/aac/wma) need ffmpeg: not supported.
SUPPORTED_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")
UNSUPPORTED_AUDIO_SUFFIXES = (".m4a", ".aac", ".wma", ".mp4", ".webm", ".alac", ".ape")
UPSTREAM_RATE = 16000  # the upstream dataset's .npy records hold 16 kHz audio
# Longer than this, a source is analysed from windows: five minutes hold many phrases, and the analysis's memory grows
# with the length it reads (an hour read whole took 11.4 GB).
MAX_ANALYSED_SECONDS = 300.0
EXCERPT_WINDOWS = 5
MAX_SAMPLE_RATE = 384_000  # the highest rate audio interfaces record; a header claiming more is not audio we read
# The lowest rate audio is stored at (G.711 telephony). A header claiming less is wrong, not audio: a 1 Hz header made
# 300 s of "music" from 300 numbers, resampled, and gave it prompts.
MIN_SAMPLE_RATE = 8_000
READ_BLOCK_FRAMES = 1 << 16  # frames read at a time, so a file with many channels costs little more than mono


@dataclass(frozen=True)
class Source:
    """One future sample: an audio file, or one record of an upstream .npy dataset."""

    name: str
    path: Path
    record: int | None = None  # index into the .npy, for dataset records
    dataset: np.ndarray | None = field(default=None, compare=False, repr=False)  # the .npy, unpickled once


@dataclass(frozen=True)
class AnalysedAudio:
    """Which part of a source the features describe: all of it, or windows of it (start and length, seconds)."""

    source_seconds: float
    windows: tuple[tuple[float, float], ...]

    @property
    def whole(self) -> bool:
        return len(self.windows) == 1 and self.windows[0] == (0.0, self.source_seconds)

    def as_dict(self) -> dict:
        return {"method": "whole" if self.whole else "windows", "source_seconds": round(self.source_seconds, 3),
                "windows": [[round(start, 3), round(length, 3)] for start, length in self.windows]}


def excerpt_windows(total_frames: int, rate: int) -> list[tuple[int, int]]:
    """(start frame, frames) of what to analyse: the whole, or EXCERPT_WINDOWS windows centred at (i + ½)/n."""
    if total_frames <= MAX_ANALYSED_SECONDS * rate:
        return [(0, total_frames)]
    length = int(MAX_ANALYSED_SECONDS / EXCERPT_WINDOWS * rate)
    centres = [(i + 0.5) / EXCERPT_WINDOWS * total_frames for i in range(EXCERPT_WINDOWS)]
    return [(int(min(max(c - length / 2, 0), total_frames - length)), length) for c in centres]


def _described(spans: list[tuple[int, int]], total_frames: int, rate: int) -> AnalysedAudio:
    return AnalysedAudio(total_frames / rate, tuple((start / rate, frames / rate) for start, frames in spans))


def _check_rate(rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioProblem(f"sample rate {rate} Hz is not supported (from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE})")


def read_audio(path: Path) -> tuple[np.ndarray, int, AnalysedAudio]:
    """Mono float32 at the file's own rate (analyse() resamples), that rate, and which part was read."""
    import soundfile

    try:
        # libsndfile takes the name as bytes; soundfile encodes a str strictly, so a name that is not UTF-8
        # (os.fsdecode's surrogates) goes as its own bytes.
        with soundfile.SoundFile(os.fsencode(path) if _display(str(path)) != str(path) else str(path)) as audio_file:
            rate, total = audio_file.samplerate, audio_file.frames
            _check_rate(rate)
            spans = excerpt_windows(total, rate)
            pieces = []
            for start, frames in spans:
                if start:
                    audio_file.seek(start)
                for block in audio_file.blocks(blocksize=READ_BLOCK_FRAMES, frames=frames, dtype="float32",
                                               always_2d=True):
                    with np.errstate(invalid="ignore", over="ignore"):  # inf and -inf: analyse() says so, once
                        pieces.append(block.mean(axis=1))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioProblem(f"cannot read audio: {exc}") from None
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return audio, rate, _described(spans, total, rate)


def _display(name: str) -> str:
    """A file name as the prompts file records it: a name that is not UTF-8 (its bytes decoded by os.fsdecode into
    lone surrogates, which no UTF-8 file can hold) with those bytes written as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


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
            sources += [Source(_display(p.relative_to(path).as_posix()), p) for p in found]
        elif path.suffix.lower() == ".npy":
            if not allow_pickle:
                problems.append(
                    f"{item}: a .npy dataset is loaded with pickle, which can run code from the file; "
                    "add --allow-pickle only if you trust where it came from"
                )
            else:
                sources += _npy_sources(path, problems)
        elif path.suffix.lower() in SUPPORTED_SUFFIXES and not path.is_file():
            problems.append(f"{item}: not a regular file (a pipe or a device, which can keep a reader waiting "
                            "forever); give an audio file")
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            sources.append(Source(_display(path.name), path))
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
    # The header first: a header claiming 10^11 floats made np.load allocate 373 GiB (a MemoryError traceback), and
    # an array that is not records need not be loaded at all.
    try:
        with open(path, "rb") as npy_file:
            read_header = (np.lib.format.read_array_header_1_0 if np.lib.format.read_magic(npy_file) == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(npy_file)
    except (OSError, ValueError, EOFError) as exc:
        raise AudioInputError(f"{path}: cannot be read as a .npy file ({exc})") from None
    if dtype != object or len(shape) != 1:
        raise AudioInputError(f"{path}: expected a 1-D array of records with 'audio' and 'audio_meta', got "
                              f"{dtype} with shape {shape}")
    log.warning("%s: loading with allow_pickle=True (this can run code stored in the file)", path)
    try:
        data = np.load(path, allow_pickle=True)
    except Exception as exc:  # unpickling a file raises whatever its bytes make it raise (UnpicklingError, ...)
        raise AudioInputError(f"{path}: cannot be read as a .npy file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, np.ndarray) or data.dtype != object or data.ndim != 1:
        raise AudioInputError(f"{path}: expected a 1-D array of records with 'audio' and 'audio_meta'")
    return data


def _npy_sources(path: Path, problems: list[str]) -> list[Source]:
    try:
        records = _npy_records(path)
    except AudioInputError as exc:
        problems.append(str(exc))
        return []
    return [Source(f"{_display(path.name)}[{index}]", path, index, records) for index in range(len(records))]


def load_source(source: Source) -> tuple[np.ndarray, int, AnalysedAudio, dict | None]:
    """The source's mono audio (or its windows), rate, which part that is, and its upstream metadata if any."""
    if source.record is None:
        return (*read_audio(source.path), None)
    record = source.dataset[source.record]
    if not isinstance(record, dict) or "audio" not in record:
        raise AudioProblem("record has no 'audio' array")
    meta = record.get("audio_meta")
    rate = _record_rate(meta.get("sample_rate", UPSTREAM_RATE) if isinstance(meta, dict) else UPSTREAM_RATE)
    _check_rate(rate)
    try:
        audio = np.asarray(record["audio"])
        if audio.dtype.kind != "f":  # complex would lose its imaginary part, integers their scale, silently
            raise TypeError
    except (TypeError, ValueError):
        raise AudioProblem(f"record's 'audio' is not an array of floats (got {_dtype_name(record['audio'])}); "
                           "the upstream format holds float audio in -1..1") from None
    if audio.ndim != 1:  # flattened, channels would interleave into one signal at a multiple of the rate
        raise AudioProblem(f"record's 'audio' has shape {audio.shape}; the upstream format holds mono, 1-D")
    audio = audio.astype(np.float32)
    total = audio.size
    spans = excerpt_windows(total, rate)
    if len(spans) > 1:
        audio = np.concatenate([audio[start : start + frames] for start, frames in spans])
    return audio, rate, _described(spans, total, rate), _plain(meta)


def _dtype_name(value) -> str:
    return str(value.dtype) if isinstance(value, np.ndarray) else type(value).__name__


def _record_rate(value) -> int:
    """A record's sample rate, which the file sets to anything at all (a string, NaN, 1e400, a list): a whole
    number of Hz, or the record is skipped with its reason."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise AudioProblem(f"audio_meta's sample_rate is not a whole number of Hz (a {type(value).__name__})")


# Upstream metadata nested deeper than this is cut there: a pickled list that holds itself recursed for ever
# (RecursionError, a traceback), and nothing a dataset describes its audio with goes this deep.
MAX_META_DEPTH = 32


def _plain(value, depth: int = 0):
    """JSON-safe copy of upstream metadata (numpy scalars and arrays become numbers and lists). A float that JSON
    cannot hold (NaN, infinity) becomes its name; an object whose text is Python's default (it holds a memory address,
    different on every run) becomes its type's name, so that the same dataset always writes the same bytes. Text
    that has no UTF-8 (a lone surrogate: the prompts file could not be written) gets U+FFFD there."""
    if depth > MAX_META_DEPTH and isinstance(value, (dict, list, tuple, np.ndarray)):
        return f"<nested deeper than {MAX_META_DEPTH}>"
    if isinstance(value, dict):
        return {without_lone_surrogates(str(k)): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), depth) if value.size <= 64 else f"<array of {value.size}>"
    if isinstance(value, np.generic):
        return _plain(value.item(), depth)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return without_lone_surrogates(value)
    if value is None or isinstance(value, (int, float, bool)):
        return value
    text = str(value)
    return f"<{type(value).__name__}>" if text == object.__repr__(value) else without_lone_surrogates(text)
