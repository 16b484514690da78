"""Long runs that survive anything: SIGKILL anywhere, SIGINT, locks, recipe changes, resume."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SMALL, model_flags, prompts_doc, read_json, run_cli, run_subprocess, stable

from music2image.journal import JOURNAL_NAME, Journal
from music2image.outputs import OutputLock

def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix == ".png"}


def _all_names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _image_records(folder: Path) -> list[dict]:
    return [r for r in Journal.read(folder / JOURNAL_NAME) if r.get("type") == "image"]


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory, tiny_model):
    """An uninterrupted reference run of 2 samples × 5 prompts (one sample skipped)."""
    root = tmp_path_factory.mktemp("crash")
    (root / "p.json").write_text(json.dumps(prompts_doc(samples=3, error_samples=(1,))))
    args = ["generate", "--prompts-file", str(root / "p.json"), *model_flags(tiny_model), *SMALL, "--quiet"]
    (root / "reference").mkdir()
    out = run_subprocess(["-m", "music2image", *args], cwd=root / "reference")
    assert out.returncode == 0, out.stderr
    return root, args, root / "reference" / "images"


POINTS = ["load", "decode", "half-png", "rename", "journal", "torn-journal", "log"]


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_run(point, crash_setup):
    root, args, reference = crash_setup
    target = 1 if point in ("log", "load") else random.Random(point).randint(2, 9)  # seeded: a failure can be replayed
    run_dir = root / f"killed-{point}"
    run_dir.mkdir()
    out_dir = run_dir / "images"  # the same relative --output-dir as the reference, from another folder
    killed = run_subprocess([str(REPO / "tests" / "helpers" / "kill_at.py"), point, str(target), *args], cwd=run_dir)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    finished_before = {(r["sample_idx"], r["prompt_id"]) for r in _image_records(out_dir) if r["status"] == "success"}
    expected_before = {"log": 10, "load": 0}.get(point, target - 1)
    assert len(finished_before) == expected_before

    resumed = run_subprocess(["-m", "music2image", *args], cwd=run_dir)
    assert resumed.returncode == 0, resumed.stderr

    assert _files(out_dir) == _files(reference)  # same files, byte for byte
    assert _all_names(out_dir) == _all_names(reference)  # and nothing else: no temporaries, no torn files
    for name in ("image_generation_log.json", "image_generation_summary.json"):
        assert stable(read_json(out_dir / name)) == stable(read_json(reference / name))
    # Nothing finished before the kill was made again: one success record per image, ever.
    records = [(r["sample_idx"], r["prompt_id"]) for r in _image_records(out_dir) if r["status"] == "success"]
    assert len(records) == len(set(records)) == 10


def _start(args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "music2image", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_images(folder: Path, count: int, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_image_records(folder)) >= count:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("run made no progress")


@pytest.fixture
def slow_args(workdir, tiny_model):
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=8)))
    return ["generate", "--prompts-file", "p.json", *model_flags(tiny_model), "--width", "128", "--height", "128",
            "--steps", "12"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_writes_an_interrupted_log_and_resumes(signum, workdir, slow_args):
    process = _start(slow_args, workdir)
    _wait_for_images(workdir / "images", 2, process)
    process.send_signal(signum)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    log = read_json(workdir / "images" / "image_generation_log.json")
    assert log["metadata"]["interrupted"] is True and log["metadata"]["pending"] > 0
    assert read_json(workdir / "images" / "image_generation_summary.json")["interrupted"] is True
    done = len(_image_records(workdir / "images"))
    assert 2 <= done < 40

    assert run_cli(*slow_args, "--quiet") == 0
    log = read_json(workdir / "images" / "image_generation_log.json")
    assert log["metadata"]["interrupted"] is False and log["metadata"]["successful"] == 40
    assert len(_image_records(workdir / "images")) == 40  # the first run's images were not made again


@pytest.mark.slow
def test_second_ctrl_c_stops_at_once_without_torn_files(workdir, slow_args):
    process = _start(slow_args, workdir)
    _wait_for_images(workdir / "images", 1, process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    assert not list((workdir / "images").rglob("*.tmp"))
    for png in (workdir / "images").rglob("*.png"):
        from PIL import Image

        Image.open(png).load()  # every image on disk is whole
    assert run_cli(*slow_args, "--quiet") == 0


def test_a_second_run_on_the_same_folder_is_refused(prompts_file, tiny_model, workdir, capsys):
    (workdir / "images").mkdir()
    lock = OutputLock(workdir / "images").acquire()
    try:
        assert run_cli("generate", *model_flags(tiny_model), *SMALL) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert f"another music2image run is writing here: process {os.getpid()}" in err
    assert list((workdir / "images").iterdir()) == []


def test_a_stale_lock_from_a_dead_process_is_taken_over(prompts_file, tiny_model, workdir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (workdir / "images").mkdir()
    (workdir / "images" / ".music2image.lock").write_text(json.dumps({"pid": dead.pid, "host": "h", "started": "t"}))
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1") == 0
    assert not (workdir / "images" / ".music2image.lock").exists()


def test_another_recipe_is_refused_before_loading_and_overwrite_regenerates(prompts_file, tiny_model, workdir, capsys):
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "2") == 0
    before = _files(workdir / "images")
    capsys.readouterr()
    assert run_cli("generate", *model_flags(tiny_model), *SMALL[:4], "--steps", "3", "--limit", "2",
                   "--guidance-scale", "7") == 2
    err = capsys.readouterr().err
    assert "holds images made with another recipe" in err
    assert "steps: 2 there, 3 now" in err and "guidance_scale: 5.0 there, 7.0 now" in err and "--overwrite" in err
    assert "loaded" not in err  # refused before any model loaded
    assert _files(workdir / "images") == before

    assert run_cli("generate", *model_flags(tiny_model), *SMALL[:4], "--steps", "3", "--limit", "2", "--overwrite") == 0
    after = _files(workdir / "images")
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)
    records = _image_records(workdir / "images")
    assert len(records) == 2  # --overwrite starts a fresh journal


def test_resume_makes_missing_corrupt_failed_and_changed_images_only(workdir, tiny_model):
    doc = prompts_doc(samples=1)
    (workdir / "p.json").write_text(json.dumps(doc))
    args = ["generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL]
    assert run_cli(*args) == 0
    images = workdir / "images"
    original = _files(images)
    (images / "sample_000" / "sample_000_prompt_01.png").unlink()
    (images / "sample_000" / "sample_000_prompt_02.png").write_bytes(b"not a png")
    doc["samples"][0]["prompts"][3]["visual_prompt"] = "a completely different prompt"
    (workdir / "p.json").write_text(json.dumps(doc))
    assert run_cli(*args, "--replace-changed") == 0  # (without it: refused, see the test below)
    made_again = [(r["sample_idx"], r["prompt_id"]) for r in _image_records(images)][5:]
    assert made_again == [(0, 1), (0, 2), (0, 3)]
    now = _files(images)
    assert now["sample_000/sample_000_prompt_01.png"] == original["sample_000/sample_000_prompt_01.png"]
    assert now["sample_000/sample_000_prompt_03.png"] != original["sample_000/sample_000_prompt_03.png"]
    assert read_json(images / "image_generation_log.json")["generated_images"][3]["visual_prompt"] == \
        "a completely different prompt"
    # A finished run re-run loads no model and only rewrites log and summary.
    assert run_cli(*args) == 0
    assert len(_image_records(images)) == 8


def test_pickle_only_model_folders_are_refused(tiny_model, workdir, capsys):
    import shutil

    import torch
    from safetensors.torch import load_file

    model = workdir / "pickled"
    shutil.copytree(tiny_model / "base", model)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), model / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    assert run_cli("generate", "--prompts-file", "p.json", "--model", "pickled", *SMALL) == 2
    err = capsys.readouterr().err
    assert "--model pickled: could not load the model" in err
    assert not (workdir / "images").exists()


def test_another_prompts_file_does_not_silently_replace_finished_images(workdir, tiny_model, capsys):
    doc = prompts_doc(samples=2)
    (workdir / "p.json").write_text(json.dumps(doc))
    args = ["generate", *model_flags(tiny_model), *SMALL, "--quiet"]
    assert run_cli(*args, "--prompts-file", "p.json") == 0
    images = workdir / "images"
    before = _files(images)
    journal = (images / JOURNAL_NAME).read_bytes()
    other = json.loads(json.dumps(doc))
    for prompt in other["samples"][0]["prompts"]:  # same ids, other texts
        prompt["visual_prompt"] = "another file's prompt " + str(prompt["prompt_id"]) + " x" * 40
    (workdir / "other.json").write_text(json.dumps(other))
    capsys.readouterr()

    assert run_cli(*args, "--prompts-file", "other.json") == 2
    err = capsys.readouterr().err
    assert "images: 5 finished image(s) would be replaced" in err and "--replace-changed" in err
    shortened = json.dumps(other["samples"][0]["prompts"][0]["visual_prompt"][:47] + "…", ensure_ascii=False)
    assert f'sample 0 prompt 0: "golden concert stage, painting number 0-0" there, {shortened} now' in err
    assert "... and 2 more" in err and "Traceback" not in err and "loaded" not in err
    assert _files(images) == before and (images / JOURNAL_NAME).read_bytes() == journal  # nothing written

    # Asked for, and only for what is selected: the rest of the folder stays, and stays in the log and summary.
    assert run_cli(*args, "--prompts-file", "other.json", "--replace-changed", "--limit", "3") == 0
    after = _files(images)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {f"sample_000/sample_000_prompt_0{p}.png" for p in range(3)}
    log = read_json(images / "image_generation_log.json")
    entries = log["generated_images"]
    assert [(e["sample_idx"], e["prompt_id"], e.get("in_selection", True)) for e in entries] == \
        [(0, p, True) for p in range(3)] + [(0, 3, False), (0, 4, False)] + [(1, p, False) for p in range(5)]
    assert entries[0]["visual_prompt"].startswith("another file's prompt 0")
    assert entries[3]["visual_prompt"] == doc["samples"][0]["prompts"][3]["visual_prompt"]  # what that file shows
    meta = log["metadata"]
    assert (meta["total_prompts"], meta["successful"], meta["pending"], meta["kept_outside_selection"]) == (10, 10, 0, 7)
    summary = read_json(images / "image_generation_summary.json")
    assert summary["total_images_generated"] == 10 and summary["by_mode"] == {"convergent": 6, "divergent": 4}


def test_a_sample_range_run_keeps_the_other_samples_in_log_and_summary(workdir, tiny_model):
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=2)))
    args = ["generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL, "--quiet"]
    assert run_cli(*args, "--sample-range", "0:1") == 0
    assert run_cli(*args, "--sample-range", "1:2") == 0
    log = read_json(workdir / "images" / "image_generation_log.json")
    assert [(e["sample_idx"], "in_selection" in e) for e in log["generated_images"]] == \
        [(1, False)] * 5 + [(0, True)] * 5
    assert log["metadata"]["successful"] == 10 and log["metadata"]["generated_this_run"] == 5
    summary = read_json(workdir / "images" / "image_generation_summary.json")
    assert summary["total_images_generated"] == 10 and sorted(summary["by_sample"]) == ["0", "1"]
    # An ordinary run over everything lists every image once, in file order, unmarked.
    assert run_cli(*args) == 0
    log = read_json(workdir / "images" / "image_generation_log.json")
    assert [(e["sample_idx"], e["prompt_id"]) for e in log["generated_images"]] == \
        [(s, p) for s in range(2) for p in range(5)]
    assert not any("in_selection" in e for e in log["generated_images"])
    assert "kept_outside_selection" not in log["metadata"]


@pytest.mark.slow
def test_sigterm_while_the_model_loads_stops_cleanly_with_130(workdir, tiny_model):
    """SLURM and `timeout` send SIGTERM at any moment, also while minutes of weights load: the run stops right after
    loading (a second signal: at once), having made and written nothing, with the lock released."""
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1)))
    (workdir / "images").mkdir()  # an existing folder: the run locks it before loading
    process = _start(["generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL], workdir)
    for line in process.stderr:
        if "to generate" in line:  # planned, folder locked; the model loads next
            assert (workdir / "images" / ".music2image.lock").exists()
            process.send_signal(signal.SIGTERM)
            break
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "SIGTERM received" in err and "run the same command again to resume" in err and "Traceback" not in err
    assert list((workdir / "images").iterdir()) == []  # no lock left, no journal, no log: nothing was made
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL, "--quiet") == 0


def _catches_sigterm(pid: int) -> bool:
    """Linux: /proc says which signals the process has handlers for (SigCgt, a hex bit mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_sigterm_is_handled_from_the_moment_any_command_starts(workdir):
    """`prompts` too: SIGTERM as soon as the command line is up → exit 130 with the message, nothing written
    (it used to die with 143 and no word)."""
    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    from synth import progression, write_wav

    write_wav(workdir / "song.wav", progression(57, "minor", 90, 20))
    process = subprocess.Popen([sys.executable, "-m", "music2image", "prompts", "song.wav", "--output", "p.json"],
                               cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _catches_sigterm(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.endswith("music2image: interrupted; run the same command again to resume\n") and "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["song.wav"]


def test_a_load_error_that_points_at_a_stacktrace_says_its_cause_instead():
    """diffusers' text for a hub id it could neither find cached nor look up ends "Please check out the root cause
    in the stacktrace above", which the user never sees: one message replaces the traceback (from the newcomer
    run). The cause diffusers chained is said instead."""
    from music2image.engine.load import _load_error

    try:
        try:
            raise OSError("[Errno -2] Name or service not known")
        except OSError as lookup:
            raise OSError("Cannot load model someone/model: the model is not fully cached locally and an error "
                          "occurred while trying to fetch metadata from the Hub. Please check out the root cause "
                          "in the stacktrace above.") from lookup
    except OSError as exc:
        message = str(_load_error("--model", "someone/model", exc))
    assert "stacktrace" not in message
    assert "fetch metadata from the Hub.; cause: [Errno -2] Name or service not known" in message
