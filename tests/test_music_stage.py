"""The music stage as one library function: the CLI and Python write the same file; long files are read in windows."""

import os
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


def test_a_hostile_npy_is_one_message_or_a_skipped_record(workdir, capsys):
    # A header claiming 10^11 floats: np.load allocated 373 GiB (MemoryError traceback); it is not records anyway.
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }"
    (workdir / "absurd.npy").write_bytes(b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header
                                         + b"\n" + bytes(100))
    records = np.empty(1, dtype=object)
    records[:] = [{"audio": np.zeros(16000, dtype=np.float32)}]
    np.save(workdir / "records.npy", records, allow_pickle=True)
    (workdir / "torn.npy").write_bytes((workdir / "records.npy").read_bytes()[:200])  # UnpicklingError
    for name, said in (("absurd.npy", "got float32 with shape (100000000000,)"), ("torn.npy", "UnpicklingError")):
        assert run_cli("prompts", name, "--allow-pickle", "--output", "out/p.json") == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and not (workdir / "out").exists()

    music = progression(57, "minor", 80, 4, rate=16000)
    records = np.empty(6, dtype=object)
    records[:] = [{"audio": music, "audio_meta": {"sample_rate": "abc"}},  # int('abc') raised ValueError
                  {"audio": music, "audio_meta": {"sample_rate": float("nan")}},
                  {"audio": music, "audio_meta": {"sample_rate": [16000]}},
                  {"audio": music.astype(np.complex64)},  # its imaginary part was dropped, with a warning
                  {"audio": (music * 127).astype(np.int8)},  # read as +28 dBFS "music"
                  {"audio": np.stack([music, music], axis=1)}]  # stereo, flattened: one signal at twice the rate
    np.save(workdir / "dataset.npy", records, allow_pickle=True)
    assert run_cli("prompts", "dataset.npy", "--allow-pickle", "--output", "p.json") == 1
    assert "Traceback" not in capsys.readouterr().err
    import json

    errors = [sample["error"] for sample in json.loads((workdir / "p.json").read_text())["samples"]]
    assert errors[:3] == [f"audio_meta's sample_rate is not a whole number of Hz (a {kind})"
                          for kind in ("str", "float", "list")]
    assert "not an array of floats (got complex64)" in errors[3] and "(got int8)" in errors[4]
    assert errors[5] == "record's 'audio' has shape (64000, 2); the upstream format holds mono, 1-D"


def test_a_file_name_that_is_not_utf8_is_read_and_recorded_escaped(workdir, capsys):
    (workdir / "music").mkdir()
    write_wav(workdir / "music" / "ok.wav", progression(57, "minor", 80, 4))
    # caf\xe9.wav in Latin-1: its name was unreadable for soundfile, then a UnicodeEncodeError crashed the write.
    (workdir / "music" / "ok.wav").link_to(workdir / "music" / os.fsdecode(b"caf\xe9.wav"))
    assert run_cli("prompts", "music", "--output", "p.json") == 0
    import json

    samples = json.loads((workdir / "p.json").read_text(encoding="utf-8"))["samples"]
    assert [sample["source"] for sample in samples] == ["caf\\xe9.wav", "ok.wav"]
    assert samples[0]["musical_features"] == samples[1]["musical_features"]  # read, not skipped


def test_a_line_break_in_a_file_name_is_shown_escaped_in_its_warning(workdir, capsys):
    """A file named "a<newline>b.wav" split its "skipping" warning over two lines, the second reading as a message
    about a file "b.wav"."""
    from synth import silence

    (workdir / "music").mkdir()
    write_wav(workdir / "music" / "ok.wav", progression(57, "minor", 80, 4))
    write_wav(workdir / "music" / "a\nb.wav", silence(2))
    assert run_cli("prompts", "music", "--output", "p.json") == 0
    err = capsys.readouterr().err
    assert "skipping a\\u000ab.wav: silent" in err and not any(line.startswith("b.wav") for line in err.splitlines())


def test_a_pipe_named_like_audio_is_refused_not_waited_on(workdir, capsys):
    os.mkfifo(workdir / "stream.wav")  # opening it waited forever for a writer
    assert run_cli("prompts", "stream.wav", "--output", "out/p.json") == 2
    assert "stream.wav: not a regular file" in capsys.readouterr().err and not (workdir / "out").exists()


def test_an_output_that_cannot_or_must_not_be_written_is_refused_before_the_analysis(workdir, capsys):
    write_wav(workdir / "song.wav", progression(57, "minor", 80, 4))
    song = (workdir / "song.wav").read_bytes()
    os.mkfifo(workdir / "pipe.json")  # as /dev/null: --overwrite renamed the prompts over it (as root, the device)
    (workdir / "a_file").write_text("x")
    cases = {"song.wav": "is one of the audio inputs", "pipe.json": "is not a regular file",
             "a_file/p.json": "cannot be written: a_file is not a folder; nothing was analysed"}  # said after it
    for output, said in cases.items():
        assert run_cli("prompts", "song.wav", "--output", output, "--overwrite") == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and "progress" not in err
    assert (workdir / "song.wav").read_bytes() == song and (workdir / "pipe.json").is_fifo()


def test_nan_or_infinite_samples_at_another_rate_are_a_skipped_sample_not_a_crash(workdir, capsys):
    """The finite check came after resampling, and librosa.resample refuses such audio: a damaged float file at
    44.1 kHz (any rate but the analysis's 22.05 kHz) was a traceback that stopped the whole run."""
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(44100 * 2) / 44100)).astype(np.float32)
    damaged = tone.copy()
    damaged[1000:1010] = np.nan
    write_wav(workdir / "nan.wav", damaged, rate=44100, subtype="FLOAT")
    write_wav(workdir / "tone.wav", tone, rate=44100, subtype="FLOAT")
    assert run_cli("prompts", "nan.wav", "tone.wav", "--output", "p.json", "--quiet", "--jobs", "1") == 0
    assert capsys.readouterr().err == "skipping nan.wav: the audio holds NaN or infinite samples\n"


def test_infinite_samples_are_said_once_without_numpy_warnings(workdir, capsys):
    stereo = np.full((22050, 2), 0.1, dtype=np.float32)
    stereo[100] = [np.inf, -np.inf]  # their mean: "RuntimeWarning: invalid value encountered in reduce" and its line
    write_wav(workdir / "inf.wav", stereo, subtype="FLOAT")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (pytest keeps warnings off stderr)
        assert run_cli("prompts", "inf.wav", "--output", "p.json", "--quiet") == 1
    assert capsys.readouterr().err == "skipping inf.wav: the audio holds NaN or infinite samples\n"
