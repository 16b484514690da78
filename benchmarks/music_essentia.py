#!/usr/bin/env python3
"""Essentia's key and tempo estimators on the music stage's evaluation set, scored as benchmarks/music_accuracy.py
scores music2image's (issue 14: "essentia, if it earns its place as a dependency — measure").

Essentia is not a dependency of music2image (AGPL-3.0; see docs/PERFORMANCE.md, "essentia, measured"), so this runs
in a venv of its own, which needs neither music2image nor librosa:

    python3.11 -m venv /tmp/essentia/venv && /tmp/essentia/venv/bin/pip install essentia numpy soundfile
    # music2image's figures on the same clips, in the project's venv (rows of truth and estimates per clip):
    PYTHONPATH=$PWD/src python benchmarks/music_accuracy.py --seed 2027 --rows /tmp/essentia/m2i_2027.json
    /tmp/essentia/venv/bin/python benchmarks/music_essentia.py --seed 2027 --compare /tmp/essentia/m2i_2027.json
    # the reported set (seed 2026), likewise with --seed 2026; each clip a method got wrong:
    /tmp/essentia/venv/bin/python benchmarks/music_essentia.py --seed 2027 --compare /tmp/essentia/m2i_2027.json \
        --list-errors music2image key_tonictriad rhythm2013_multifeature

Key: KeyExtractor (HPCP + profile correlation) with each of its profile types ("bgate" is its default). Tempo:
RhythmExtractor2013 (method "multifeature", its default, and "degara") and PercivalBpmEstimator. The clips (22.05 kHz,
rendered by benchmarks/music_corpus.py) are resampled once to 44.1 kHz with essentia's Resample, the rate
RhythmExtractor2013 is built for (it has no sample-rate parameter); that cost is reported apart. Each clip's results
are cached (--results), so a second run only scores. Prints tables (all clips, then per source), the errors by kind
(tempo ratio to the truth, key relation to the truth) and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The same scoring as music2image's figures; neither module needs music2image, librosa or music21 at import.
from music_accuracy import NOTE_NAMES, mirex_key_score, tempo_hits
from music_corpus import SEED, default_cache

ANALYSIS_RATE = 44100
# Every profile KeyExtractor accepts, but "weichai" (raises on minor keys) and "faraldo"/"pentatonic" (listed in the
# help of essentia 2.1b6.dev1389, refused when configured).
KEY_PROFILES = ("bgate", "edma", "edmm", "braw", "temperley", "temperley2005", "krumhansl", "shaath", "diatonic",
                "tonictriad", "thpcp", "gomez", "noland")
TEMPO_METHODS = ("rhythm2013_multifeature", "rhythm2013_degara", "percival")
PITCH_CLASSES = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7,
                 "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
SOURCES = ("bach", "classical", "folk")


def analyse_clip(path: Path) -> dict:
    """Every estimator on one clip: {method: {"tonic"/"mode" or "tempo", "seconds"}}."""
    import essentia.standard as es
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    started = time.perf_counter()
    audio = es.Resample(inputSampleRate=rate, outputSampleRate=ANALYSIS_RATE)(audio) if rate != ANALYSIS_RATE else audio
    found = {"resample": {"seconds": time.perf_counter() - started}, "duration": len(audio) / ANALYSIS_RATE}
    for profile in KEY_PROFILES:
        started = time.perf_counter()
        key, scale, strength = es.KeyExtractor(profileType=profile, sampleRate=ANALYSIS_RATE)(audio)
        found[f"key_{profile}"] = {"tonic": PITCH_CLASSES[key], "mode": scale, "strength": float(strength),
                                   "seconds": time.perf_counter() - started}
    for method in ("multifeature", "degara"):
        started = time.perf_counter()
        bpm = es.RhythmExtractor2013(method=method)(audio)[0]
        found[f"rhythm2013_{method}"] = {"tempo": float(bpm), "seconds": time.perf_counter() - started}
    started = time.perf_counter()
    bpm = es.PercivalBpmEstimator(sampleRate=ANALYSIS_RATE)(audio)
    found["percival"] = {"tempo": float(bpm), "seconds": time.perf_counter() - started}
    return found


def key_figures(rows: list[dict], method: str) -> dict:
    n = len(rows)
    return {"key_exact": sum(r[method]["tonic"] == r["tonic_pc"] and r[method]["mode"] == r["mode"] for r in rows) / n,
            "key_weighted": sum(mirex_key_score(r[method]["tonic"], r[method]["mode"], r["tonic_pc"], r["mode"])
                                for r in rows) / n,
            "mode": sum(r[method]["mode"] == r["mode"] for r in rows) / n}


def tempo_figures(rows: list[dict], method: str) -> dict:
    n = len(rows)
    hits = [tempo_hits(r[method]["tempo"], r["bpm"]) for r in rows]
    return {"tempo_4pct": sum(h[0] for h in hits) / n, "tempo_4pct_octaves": sum(h[1] for h in hits) / n}


def key_relation(tonic: int, mode: str, true_tonic: int, true_mode: str) -> str:
    step = (tonic - true_tonic) % 12
    if mode == true_mode:
        return {0: "exact", 7: "fifth up", 5: "fifth down"}.get(step, f"same mode, +{step}")
    if mode == "minor" and step == 9 or mode == "major" and step == 3:
        return "relative"
    return "parallel" if step == 0 else f"other mode, +{step}"


def tempo_relation(tempo: float | None, truth: float) -> str:
    """The simple ratio (within 4 %) an estimate stands in to the truth: octave (×2, ×½), ×3/2 and ×2/3 (a dotted or
    triple-meter beat), ×3 and ×⅓, ×4/3 and ×¾."""
    if tempo is None:
        return "none"
    for name, ratio in (("x1", 1.0), ("x2", 2.0), ("x1/2", 0.5), ("x3/2", 1.5), ("x2/3", 2 / 3), ("x3", 3.0),
                        ("x1/3", 1 / 3), ("x4/3", 4 / 3), ("x3/4", 0.75), ("x4", 4.0), ("x1/4", 0.25)):
        if abs(tempo / truth - ratio) / ratio <= 0.04:
            return name
    return "other"


def counted(labels: list[str]) -> str:
    tally = {label: labels.count(label) for label in labels}
    return ", ".join(f"{label} {count}" for label, count in sorted(tally.items(), key=lambda kv: -kv[1]))


def main() -> None:
    import essentia

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED, help=f"which draw of the set (default {SEED}, the reported "
                        "one; built by benchmarks/music_corpus.py)")
    parser.add_argument("--set", type=Path, help="the set's folder (default by seed)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--results", type=Path, help="per-clip cache of essentia's results "
                        "(default /tmp/essentia/results_seed<seed>.json)")
    parser.add_argument("--compare", type=Path, help="rows written by `music_accuracy.py --rows` on the same set: "
                        "music2image's estimates ('new') are scored beside essentia's")
    parser.add_argument("--list-errors", nargs="+", metavar="METHOD", help="list each clip a method got wrong "
                        "(e.g. key_bgate rhythm2013_multifeature music2image)")
    args = parser.parse_args()
    essentia.log.infoActive = False

    folder = args.set or default_cache(args.seed)
    manifest = json.loads((folder / "manifest.json").read_text())
    if not manifest.get("complete"):
        sys.exit(f"{folder} is not complete yet (benchmarks/music_corpus.py --seed {args.seed} builds it)")
    clips = manifest["clips"][: args.limit]
    results_path = args.results or Path("/tmp/essentia") / f"results_seed{args.seed}.json"
    cached = json.loads(results_path.read_text()) if results_path.exists() else {}
    if cached.get("essentia") != essentia.__version__:
        cached = {"essentia": essentia.__version__, "clips": {}}
    rows = []
    for clip in clips:
        if clip["file"] not in cached["clips"]:
            cached["clips"][clip["file"]] = analyse_clip(folder / clip["file"])
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(cached))
        rows.append({**clip, **cached["clips"][clip["file"]]})

    compare = []
    if args.compare:
        theirs = {r["file"]: r for r in json.loads(args.compare.read_text())}
        for row in rows:
            other = theirs[row["file"]]
            row["music2image"] = {"tonic": other["new_tonic"], "mode": other["new_mode"], "tempo": other["new_tempo"]}
            if "new_seconds" in other:  # the whole of analyse(): loudness, brightness, onsets, key, tempo and beats
                row["music2image"]["seconds"] = other["new_seconds"]
        compare = ["music2image"]
    key_methods = [*(f"key_{p}" for p in KEY_PROFILES), *compare]
    tempo_methods = [*TEMPO_METHODS, *compare]
    audio_minutes = sum(r["duration"] for r in rows) / 60
    per_minute = {m: sum(r[m]["seconds"] for r in rows) / audio_minutes
                  for m in ["resample", *key_methods, *tempo_methods] if "seconds" in rows[0][m]}

    counts = {s: sum(r["source"] == s for r in rows) for s in SOURCES}
    print(f"essentia {essentia.__version__}, seed {args.seed}: {len(rows)} clips "
          f"({', '.join(f'{v} {k}' for k, v in counts.items())}), {audio_minutes:.1f} min of audio; "
          f"resampling to {ANALYSIS_RATE} Hz {per_minute['resample']:.2f} s per minute of audio")
    subsets = [("all", rows)] + [(s, [r for r in rows if r["source"] == s]) for s in SOURCES if counts[s]]
    report = {"essentia": essentia.__version__, "seed": args.seed, "clips": len(rows), "key": {}, "tempo": {}}
    for kind, methods, measure, columns in (("key", key_methods, key_figures, ("exact", "wtd", "mode")),
                                            ("tempo", tempo_methods, tempo_figures, ("4%", "4%x2"))):
        width = 7 * len(columns) + 2
        print(f"{'':<24}" + "".join(f"{name:^{width}}" for name, _ in subsets))
        print(f"{kind + ' method':<24}" + "".join(f"  {''.join(f'{c:>7}' for c in columns)}" for _ in subsets)
              + f"{'s/min':>8}")
        for method in methods:
            figures = {name: measure(subset, method) for name, subset in subsets}
            report[kind][method] = {name: {k: round(v, 4) for k, v in f.items()} for name, f in figures.items()}
            line = "".join(f"  {''.join(f'{v:>7.3f}' for v in f.values())}" for f in figures.values())
            speed = f"{per_minute[method]:>8.3f}" if method in per_minute else ""
            print(f"{method:<24}{line}{speed}")
    print("(s/min: seconds of this CPU per minute of audio; essentia's without resampling, music2image's for the whole "
          "of analyse(), from --compare's rows)")

    print("errors by kind (key: the estimate's relation to the true key; tempo: its ratio to the true tempo):")
    for method in key_methods:
        print(f"  {method}: " + counted([key_relation(r[method]["tonic"], r[method]["mode"], r["tonic_pc"], r["mode"])
                                         for r in rows]))
    for method in tempo_methods:
        for name, subset in subsets:
            print(f"  {method}, {name}: " + counted([tempo_relation(r[method]["tempo"], r["bpm"]) for r in subset]))
    for method in args.list_errors or []:
        for r in rows:
            if "tempo" in r[method] and not tempo_hits(r[method]["tempo"], r["bpm"])[0]:
                print(f"  {method} {r['file']} {r['source']} {r['instrument']}: {r[method]['tempo']:.1f} "
                      f"for {r['bpm']:.1f} ({r[method]['tempo'] / r['bpm']:.2f}x)")
            if "tonic" in r[method] and (r[method]["tonic"], r[method]["mode"]) != (r["tonic_pc"], r["mode"]):
                print(f"  {method} {r['file']} {r['source']} {r['instrument']}: "
                      f"{NOTE_NAMES[r[method]['tonic']]} {r[method]['mode']} for {NOTE_NAMES[r['tonic_pc']]} "
                      f"{r['mode']} ({key_relation(r[method]['tonic'], r[method]['mode'], r['tonic_pc'], r['mode'])})")
    report["seconds_per_audio_minute"] = {k: round(v, 3) for k, v in per_minute.items()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
