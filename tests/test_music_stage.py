"""The music stage as one library function: the CLI and Python write the same file; long files are read in windows."""

import sys
from pathlib import Path

import numpy as np
from conftest import run_cli

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from synth import progression, write_wav  # noqa: E402

from music2image.music import DEFAULT_PROMPT_SEED, PromptPlan, write_prompts_file  # noqa: E402
from music2image.music import sources  # noqa: E402


def test_the_library_and_the_cli_share_one_default_seed_and_write_the_same_bytes(workdir):
    write_wav(workdir / "song.wav", progression(57, "minor", 80, 6))
    assert PromptPlan().seed == DEFAULT_PROMPT_SEED == 0
    assert run_cli("prompts", "song.wav", "--output", "cli.json") == 0
    document = write_prompts_file(["song.wav"], "library.json")
    assert (workdir / "cli.json").read_bytes() == (workdir / "library.json").read_bytes()
    assert document.samples[0].prompts[0].prompt_id == 0 and document.prompt_count == 5 and document.skipped == 0


def test_a_long_file_is_read_as_windows_spread_over_it_and_the_file_says_so(workdir, monkeypatch):
    rate = 8000
    ramp = (np.arange(40 * rate) / (40 * rate)).astype(np.float32)  # sample value = position in the file
    write_wav(workdir / "long.wav", np.stack([ramp, ramp], axis=1), rate=rate, subtype="FLOAT")
    monkeypatch.setattr(sources, "MAX_ANALYSED_SECONDS", 10.0)
    audio, read_rate, analysed = sources.read_audio(workdir / "long.wav")
    assert read_rate == rate and audio.size == 10 * rate  # five windows of 2 s, not 40 s
    assert [start for start, _ in analysed.windows] == [3.0, 11.0, 19.0, 27.0, 35.0]
    assert np.allclose(audio[:: 2 * rate], [3 / 40, 11 / 40, 19 / 40, 27 / 40, 35 / 40], atol=1e-4)

    write_wav(workdir / "song.wav", np.tile(progression(57, "minor", 80, 8, rate=rate), 3), rate=rate)
    assert run_cli("prompts", "song.wav", "long.wav", "--output", "p.json") == 0
    import json

    samples = json.loads((workdir / "p.json").read_text())["samples"]
    assert samples[0]["analysed_audio"] == {"method": "windows", "source_seconds": 24.0, "windows": [
        [1.4, 2.0], [6.2, 2.0], [11.0, 2.0], [15.8, 2.0], [20.6, 2.0]]}
    assert len(samples[0]["prompts"]) == 5 and "analysed_audio" in samples[1]


def test_hostile_audio_is_a_skipped_sample_with_its_reason_never_a_traceback(workdir, capsys):
    music = progression(57, "minor", 80, 4)
    write_wav(workdir / "ok.wav", music)
    write_wav(workdir / "huge_floats.wav", music * 1e30, subtype="FLOAT")  # finite, but its RMS overflowed to inf
    write_wav(workdir / "int_as_float.wav", music * 32767, subtype="FLOAT")  # integer PCM stored as floats
    write_wav(workdir / "one_hertz.wav", music[:500], rate=1)  # 500 numbers read as 500 s of "music"
    assert run_cli("prompts", "ok.wav", "huge_floats.wav", "int_as_float.wav", "one_hertz.wav", "--output",
                   "p.json") == 0
    assert "Traceback" not in capsys.readouterr().err
    import json

    samples = json.loads((workdir / "p.json").read_text())["samples"]
    assert len(samples[0]["prompts"]) == 5
    assert "far outside -1..1" in samples[1]["error"] and "far outside -1..1" in samples[2]["error"]
    assert samples[3]["error"] == "sample rate 1 Hz is not supported (from 8000 to 384000)"

