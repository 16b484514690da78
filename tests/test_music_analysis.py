"""Many sources: analysed in worker processes with the same result, and kept on disk as they are analysed, so that an
interrupted `prompts` resumes without analysing again (music/analysis.py)."""

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import read_json, run_cli

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from synth import noise_bursts, progression, silence, write_wav  # noqa: E402

from music2image.music import analysis, write_prompts_file  # noqa: E402
from music2image.music.analysis_cache import source_key  # noqa: E402
from music2image.music.sources import collect_sources  # noqa: E402
from music2image.music.writer import VocabularyWriter  # noqa: E402

RATE = 11025


@pytest.fixture
def songs(workdir):
    folder = workdir / "music"
    folder.mkdir()
    for i, (tonic, mode, bpm) in enumerate([(60, "major", 140), (57, "minor", 80), (62, "major", 110),
                                            (55, "minor", 96), (64, "major", 120)]):
        write_wav(folder / f"{i:02d}.wav", progression(tonic, mode, bpm, 4, rate=RATE), rate=RATE)
    write_wav(folder / "05_silence.wav", silence(2))
    write_wav(folder / "06_noise.wav", noise_bursts(3))
    return folder


@pytest.fixture
def analysed(monkeypatch) -> list:
    """The clips analyse() is called on in this process, by duration (it runs as before)."""
    calls, real = [], analysis.analyse

    def counting(audio, rate):
        calls.append(round(len(audio) / rate, 2))
        return real(audio, rate)

    monkeypatch.setattr(analysis, "analyse", counting)
    return calls


def test_workers_write_the_same_bytes_and_a_rerun_analyses_nothing(songs, workdir, analysed):
    assert run_cli("prompts", "music", "--output", "one.json", "--jobs", "1", "--quiet") == 0
    assert len(analysed) == 7
    assert run_cli("prompts", "music", "--output", "two.json", "--jobs", "2", "--quiet") == 0
    assert len(analysed) == 7  # in the workers, not here
    assert (workdir / "one.json").read_bytes() == (workdir / "two.json").read_bytes()
    samples = read_json(workdir / "two.json")["samples"]
    lines = (workdir / "two.analysis-cache.jsonl").read_text().splitlines()
    assert samples[5]["error"].startswith("silent") and len(lines) == 6  # a failure is not kept: the file may change
    assert {json.loads(line)["features"]["key"] for line in lines} == {s["musical_features"]["key"] for s in samples
                                                                       if "error" not in s}

    analysed.clear()
    assert run_cli("prompts", "music", "--output", "two.json", "--jobs", "2", "--quiet") == 0  # same bytes: no error
    assert analysed == [2.0]  # the silent file only: fewer than two to analyse, so no workers either
    assert (workdir / "one.json").read_bytes() == (workdir / "two.json").read_bytes()


def test_an_edited_file_is_analysed_again_and_the_others_are_not(songs, workdir, analysed):
    from music2image.music.features import analyse

    before = write_prompts_file(["music"], "p.json", jobs=1).samples[1].features
    edited = progression(66, "major", 150, 5, rate=RATE)
    write_wav(songs / "01.wav", edited, rate=RATE)
    analysed.clear()
    after = write_prompts_file(["music"], "p.json", jobs=1, overwrite=True).samples[1].features
    assert sorted(analysed) == [2.0, 5.0]  # the silent file and the edited one
    assert after != before and after == analyse(*soundfile.read(str(songs / "01.wav"), dtype="float32"))


def test_a_complete_run_drops_stale_lines_and_a_resumed_cache_raises_no_warning(songs, workdir, analysed, caplog):
    """Appending never dropped a line: the cache grew by one at each edit of a file, by every file at each change
    of the analysis code. And each run that appended began with a blank line (a separator against a line cut short
    by a crash), which the next run counted as "not an analysis of this version" and warned about."""
    write_prompts_file(["music"], "p.json", jobs=1)
    cache = workdir / "p.analysis-cache.jsonl"
    assert len(cache.read_text().splitlines()) == 6  # the silent file is not kept

    def edit(*names):
        for name in names:
            (songs / name).write_bytes((songs / name).read_bytes())  # the same bytes, a new ctime: a new key
        analysed.clear()
        write_prompts_file(["music"], "p.json", jobs=1, overwrite=True)
        return len(analysed) - 1, cache.read_text().splitlines()

    again, lines = edit("00.wav")
    assert again == 1 and len(lines) == 7 and "" not in lines  # one stale line of seven: kept for now
    again, lines = edit("02.wav")
    assert again == 1 and len(lines) == 6  # two of eight: rewritten with the six live ones
    assert {json.loads(line)["key"] for line in lines} == {
        source_key(source) for source in collect_sources(["music"]) if source.name != "05_silence.wav"}
    for name in ("00.wav", "01.wav", "02.wav", "03.wav"):
        (songs / name).write_bytes((songs / name).read_bytes())
    with pytest.raises(KeyboardInterrupt):  # an interrupted run keeps every line, stale or not
        write_prompts_file(["music"], "p.json", jobs=1, overwrite=True, writer=_InterruptingWriter())
    assert len(cache.read_text().splitlines()) > 6
    planted = workdir / f".p.analysis-cache.jsonl.{os.getpid()}.tmp"  # where the rewrite goes: taken, it is not
    planted.write_text("not ours")
    write_prompts_file(["music"], "p.json", jobs=1, overwrite=True)
    assert "could not be rewritten without its stale lines" in caplog.text and planted.read_text() == "not ours"
    assert len(cache.read_text().splitlines()) > 6  # kept as it was
    planted.unlink()
    analysed.clear()
    write_prompts_file(["music"], "p.json", jobs=1, overwrite=True)
    assert len(cache.read_text().splitlines()) == 6 and len(analysed) == 1  # the silent file; 00-03 kept
    assert "not analyses of this version" not in caplog.text


def test_a_hostile_cache_line_is_analysed_again_and_the_result_is_unchanged(songs, workdir, analysed, caplog):
    write_prompts_file(["music"], "p.json", jobs=1)
    expected = (workdir / "p.json").read_bytes()
    cache = workdir / "p.analysis-cache.jsonl"
    lines = cache.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    entries[1]["features"]["tempo"] = "fast"
    entries[2]["features"]["key"] = "C" * 10_000
    entries[3]["analysed"]["windows"] = [[0, float("inf")]]
    hostile = [lines[0][: len(lines[0]) // 2], json.dumps(entries[1]), json.dumps(entries[2]),
               json.dumps(entries[3]).replace("Infinity", "1e999"), "\x00\xff garbage", lines[4], json.dumps({**entries[5], "features": {**entries[5]["features"], "tonality": "lydian"}}),
               json.dumps({**entries[0], "features": {**entries[0]["features"], "key": "\x1b[31m"}}),
               json.dumps({**entries[4], "key": "f" * 64}), "[]", "{" * 100_000, "[" * 50_000]
    cache.write_bytes("\n".join(hostile).encode("utf-8", "surrogateescape"))
    analysed.clear()
    write_prompts_file(["music"], "p.json", jobs=1)  # the same bytes again, or it would refuse to overwrite
    assert (workdir / "p.json").read_bytes() == expected
    assert len(analysed) == 6  # the silent file and the five whose lines were spoilt
    assert "10 line(s) are not analyses of this version" in caplog.text


def test_a_cache_that_is_a_link_is_refused_before_any_analysis(songs, workdir, analysed, capsys):
    elsewhere = workdir / "precious.txt"
    elsewhere.write_text("keep me")
    (workdir / "out").mkdir()
    (workdir / "out" / "p.analysis-cache.jsonl").symlink_to(elsewhere)
    assert run_cli("prompts", "music", "--output", "out/p.json", "--jobs", "1") == 2
    assert "symbolic link" in capsys.readouterr().err
    assert elsewhere.read_text() == "keep me" and not (workdir / "out" / "p.json").exists() and not analysed


class _InterruptingWriter(VocabularyWriter):
    """Ctrl-C while the third sample's prompts are written."""

    def __init__(self):
        super().__init__()
        self.written = 0

    def write(self, descriptors, temperature, rng):
        self.written += 1
        if self.written == 11:
            raise KeyboardInterrupt
        return super().write(descriptors, temperature, rng)


def test_an_interrupted_run_keeps_what_the_workers_analysed_and_resumes(songs, workdir, analysed):
    with pytest.raises(KeyboardInterrupt):
        write_prompts_file(["music"], "p.json", jobs=2, writer=_InterruptingWriter())
    assert not (workdir / "p.json").exists()
    kept = len((workdir / "p.analysis-cache.jsonl").read_text().splitlines())
    assert 3 <= kept <= 6  # the three samples reached, and whatever was running then
    assert run_cli("prompts", "music", "--output", "p.json", "--jobs", "1", "--quiet") == 0
    assert len(analysed) == 7 - kept  # the silent file is never kept
    write_prompts_file(["music"], "fresh.json", jobs=1, cache_analyses=False)
    assert (workdir / "p.json").read_bytes() == (workdir / "fresh.json").read_bytes()
    assert not (workdir / "fresh.analysis-cache.jsonl").exists()


def test_dataset_records_go_to_the_workers_and_a_bad_one_keeps_its_metadata(workdir):
    records = [{"audio": progression(57 + i, "minor", 80 + 10 * i, 4, rate=16000), "audio_meta": {"id": i}}
               for i in range(3)]
    records.append({"audio": np.zeros(16000, dtype=np.float32), "audio_meta": {"id": 3}})
    records.append({"no audio": True})
    np.save(workdir / "dataset.npy", np.array(records, dtype=object), allow_pickle=True)
    for jobs, name in (("1", "one.json"), ("2", "two.json")):
        assert run_cli("prompts", "dataset.npy", "--allow-pickle", "--jobs", jobs, "--output", name, "--quiet") == 0
    assert (workdir / "one.json").read_bytes() == (workdir / "two.json").read_bytes()
    samples = read_json(workdir / "two.json")["samples"]
    assert [s.get("audio_meta") for s in samples] == [{"id": 0}, {"id": 1}, {"id": 2}, {"id": 3}, None]
    assert "silent" in samples[3]["error"] and "no 'audio'" in samples[4]["error"]


@pytest.mark.parametrize("value, message", [("0", "must be 1 or more"), ("two", "is not a whole number")])
def test_a_wrong_jobs_value_is_a_usage_error(value, message, songs, workdir, capsys):
    assert run_cli("prompts", "music", "--jobs", value, "--output", "p.json") == 2
    assert message in capsys.readouterr().err and not (workdir / "p.json").exists()


def test_auto_jobs_gives_each_worker_several_files_and_stays_within_the_cpus():
    assert analysis.auto_jobs(1) == analysis.auto_jobs(2 * analysis.FILES_PER_WORKER - 1) == 1
    assert 1 <= analysis.auto_jobs(10**6) <= len(os.sched_getaffinity(0))


@pytest.fixture
def one_song(workdir):
    folder = workdir / "music"
    folder.mkdir()
    write_wav(folder / "00.wav", progression(60, "major", 120, 4, rate=RATE), rate=RATE)
    return folder


def _odd_cache(kind: str, path: Path, elsewhere: Path) -> None:
    if kind == "a folder":
        path.mkdir()
    elif kind == "a FIFO":
        os.mkfifo(path)
    else:  # a hard link: appending to it would write to a file outside the output folder
        os.link(elsewhere, path)


@pytest.mark.parametrize("kind", ["a folder", "a FIFO", "a hard link"])
def test_a_cache_that_cannot_be_kept_costs_a_warning_not_the_run(kind, one_song, workdir, capsys):
    """The cache is an optimisation: before, a folder in its place stopped the run (exit 1) once the first file was
    analysed, a FIFO hung it for ever, and a hard link had the analyses appended to another file."""
    import signal

    elsewhere = workdir / "precious.txt"
    elsewhere.write_text("keep me\n")
    (workdir / "out").mkdir()
    _odd_cache(kind, workdir / "out" / "p.analysis-cache.jsonl", elsewhere)

    class Hung(Exception):  # not TimeoutError: an OSError, which the cache's reading catches

        pass

    def hung(signum, frame):
        raise Hung("the run hung on the analysis cache")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        assert run_cli("prompts", "music", "--output", "out/p.json", "--jobs", "1") == 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "analyses cannot be kept there" in capsys.readouterr().err
    assert read_json(workdir / "out" / "p.json")["samples"][0]["musical_features"]
    assert elsewhere.read_text() == "keep me\n"


def test_a_huge_cache_line_is_not_read_into_memory(workdir):
    """A cache of one 32 MiB line (a hostile or corrupt file could hold gigabytes) is read in bounded pieces: before,
    the whole line was read before its length was checked. The analysis after it is still taken."""
    import tracemalloc

    from music2image.music.features import MusicalFeatures
    from music2image.music.sources import AnalysedAudio

    path = workdir / "p.analysis-cache.jsonl"
    features = MusicalFeatures(30.0, 120.0, 1.5, "C", "major", 0.2, 0.8, -20.0, 12.0, 1500.0, 2.0)
    kept = analysis.AnalysisCache(path)
    kept.put("a" * 64, analysis.Analysis(features, AnalysedAudio(30.0, ((0.0, 30.0),)), None))
    kept.close()
    with open(path, "r+b") as cache:
        line = cache.read()
        cache.seek(0)
        cache.write(b"[" * (32 * 1024 * 1024) + b"\n" + line)
    tracemalloc.start()
    try:
        reread = analysis.AnalysisCache(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    assert len(reread) == 1 and reread.get("a" * 64).features == features


def test_other_bytes_under_the_old_modification_time_are_analysed_again(one_song, workdir, analysed):
    """cp -p, tar, unzip, rsync -t and touch -r put new bytes under an old mtime; a fixed-length render has the same
    size: before, the stale analysis was used."""
    song = one_song / "00.wav"
    before = write_prompts_file(["music"], "p.json", jobs=1).samples[0].features
    times = song.stat()
    write_wav(song, progression(57, "minor", 80, 4, rate=RATE), rate=RATE)
    os.utime(song, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert song.stat().st_size == times.st_size and song.stat().st_mtime_ns == times.st_mtime_ns
    analysed.clear()
    after = write_prompts_file(["music"], "p.json", jobs=1, overwrite=True).samples[0].features
    assert analysed == [4.0] and after != before


def test_a_worker_that_dies_gives_one_message_and_keeps_the_analyses(songs, workdir, analysed, monkeypatch, capsys):
    """A worker killed (for memory, or by a crash in a decoding library) broke the pool: before, the user saw
    BrokenProcessPool's traceback. Now one message, exit 1, and what was analysed is kept for the re-run."""
    real_submit = analysis._submit

    def dying(pool, source):
        return pool.submit(os._exit, 9) if source.name == "04.wav" else real_submit(pool, source)

    monkeypatch.setattr(analysis, "_submit", dying)
    assert run_cli("prompts", "music", "--output", "p.json", "--jobs", "2", "--quiet") == 1
    err = capsys.readouterr().err
    # 04 is submitted once 00 is handed on (2 × 2 ahead); the pool's break is seen at whichever of 01-04 is awaited
    assert re.search(r"a process analysing audio died while 0[1-4]\.wav or one of the files after it", err)
    assert "Traceback" not in err and not (workdir / "p.json").exists()
    kept = len((workdir / "p.analysis-cache.jsonl").read_text().splitlines())
    assert kept >= 1 and f"the {kept} analyses made so far are kept" in err
    monkeypatch.setattr(analysis, "_submit", real_submit)
    assert run_cli("prompts", "music", "--output", "p.json", "--jobs", "1", "--quiet") == 0
    assert len(analysed) == 7 - kept


def test_the_library_analyses_in_this_process_unless_asked(songs, workdir, analysed, monkeypatch):
    """Workers are spawned, which imports the caller's main module again: a script calling build_prompts without an
    `if __name__ == "__main__":` guard broke with BrokenProcessPool once `auto` gave it two workers (8 files on
    2 CPUs). The library's default is one process; the CLI's is auto (as if auto chose 2 here)."""
    from music2image.music import stage

    monkeypatch.setattr(stage, "auto_jobs", lambda sources: 2)
    write_prompts_file(["music"], "p.json")
    assert len(analysed) == 7


def test_auto_jobs_counts_the_memory_the_page_cache_would_give_back(monkeypatch):
    """Free pages (SC_AVPHYS_PAGES) leave out the page cache, which a machine that has read a folder of audio has
    filled: with free pages for one worker, auto gave one, though MemAvailable held many."""
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo here")
    available = next(int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines()
                     if line.startswith("MemAvailable:"))
    real_sysconf = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda name: 1 if name == "SC_AVPHYS_PAGES" else real_sysconf(name))
    cpus = len(os.sched_getaffinity(0))
    assert analysis.auto_jobs(10**6) == max(1, min(cpus, available // analysis.WORKER_BYTES))
    assert analysis.available_memory() == pytest.approx(available, rel=0.2)


_CTRL_C_AS_WORKERS_START = """
import os, signal, sys, threading
from pathlib import Path
# As a terminal starts it: a shell that runs the tests in the background starts them with SIGINT ignored, which
# the workers would inherit (and so never see Ctrl-C, fix or not).
signal.signal(signal.SIGINT, signal.default_int_handler)
from music2image.music.analysis import analyse_sources
from music2image.music.sources import Source
sources = [Source(p.name, p) for p in sorted(Path("music").glob("*.wav"))]
analyses = analyse_sources(sources, jobs=2)
# The first next() starts both workers; a fresh interpreter takes a second or more to import librosa.
threading.Timer(0.2, os.killpg, (0, signal.SIGINT)).start()
try:
    list(analyses)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_while_the_workers_start_prints_no_traceback(songs, workdir):
    """Ctrl-C reaches every process of the group. A worker ignores it once its initializer runs, but it first
    imports its modules (about a second): Ctrl-C then printed each worker's KeyboardInterrupt traceback, and one of
    the pool's thread (InvalidStateError), over the 'interrupted' message."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", _CTRL_C_AS_WORKERS_START], cwd=workdir, capture_output=True,
                          text=True, timeout=300, start_new_session=True)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
