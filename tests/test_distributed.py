"""Scale-out under 🤗 Accelerate: two CPU processes (gloo) make exactly what one process makes."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from conftest import REPO, SMALL, VOLATILE, model_flags, prompts_doc, read_json, stable

from music2image.journal import read_journal_dir
from music2image.outputs import OutputLock

# Besides timestamps and durations, only the fields that say how the work was split may differ.
SPLIT = VOLATILE | {"processes", "batch_size"}


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(script: list[str], cwd: Path, processes: int = 2, env: dict | None = None):
    """The README's CPU launch line: `accelerate launch --multi_gpu --num_processes 2 ...` (gloo without a GPU)."""
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu",
                "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *script]
    import subprocess

    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(launcher, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900)


def one_process(args: list[str], cwd: Path):
    import subprocess

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "music2image", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("dist")
    (root / "p.json").write_text(json.dumps(prompts_doc(samples=3, error_samples=(1,))))
    args = ["generate", "--prompts-file", str(root / "p.json"), *model_flags(tiny_model), *SMALL, "--quiet",
            "--batch-size", "2"]
    (root / "single").mkdir()
    # On a CPU, float results depend on the number of threads a process uses; the launcher gives each process one
    # (OMP_NUM_THREADS=1), so the one-process reference uses one too. On GPUs the thread count plays no part.
    out = one_process(args, cwd=root / "single")
    assert out.returncode == 0, out.stderr
    return root, args, root / "single" / "images"


@pytest.mark.launch
@pytest.mark.slow
def test_two_processes_make_exactly_what_one_process_makes(setup):
    root, args, single = setup
    run_dir = root / "two"
    run_dir.mkdir()
    out = accelerate_launch(["-m", "music2image", *args], cwd=run_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    images = run_dir / "images"

    assert _pngs(images) == _pngs(single)  # the same files, byte for byte
    for name in ("image_generation_log.json", "image_generation_summary.json"):
        assert stable(read_json(images / name), SPLIT) == stable(read_json(single / name), SPLIT)
    log = read_json(images / "image_generation_log.json")
    assert log["metadata"]["processes"] == 2

    # The work really was split by whole batches: each process journaled its own share, and no image twice.
    records = [r for r in read_journal_dir(images) if r.get("type") == "image"]
    by_pid = {}
    for r in records:
        by_pid.setdefault(r["pid"], []).append((r["sample_idx"], r["prompt_id"]))
    assert sorted(len(v) for v in by_pid.values()) == [4, 6]  # 5 batches of 2, dealt out: 3 and 2
    assert sorted(p.name for p in images.glob("generation_journal*.jsonl")) == [
        "generation_journal.1.jsonl", "generation_journal.jsonl"]
    assert len({key for keys in by_pid.values() for key in keys}) == 10
    assert out.stdout.count("done:") == 1  # one process speaks for the launch


@pytest.mark.launch
@pytest.mark.slow
def test_the_seed_shim_runs_under_accelerate_too(setup):
    root, args, single = setup
    run_dir = root / "shim"
    run_dir.mkdir()
    out = accelerate_launch([str(REPO / "generate_images_from_prompts.py"), *args[1:]], cwd=run_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _pngs(run_dir / "images") == _pngs(single)


@pytest.mark.launch
@pytest.mark.slow
def test_a_launch_from_a_single_file_checkpoint(setup, tiny_model):
    """The main process hashes the checkpoint and shares the recipe; the pixels are the one-process folder run's."""
    import numpy as np
    from PIL import Image

    root, args, single = setup
    run_dir = root / "single_file"
    run_dir.mkdir()
    at = args.index("--model")
    file_args = [*args[:at], "--model", str(tiny_model / "base.safetensors"), "--model-config",
                 str(tiny_model / "base"), *args[at + 2:]]
    out = accelerate_launch(["-m", "music2image", *file_args], cwd=run_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    made, reference = _pngs(run_dir / "images"), _pngs(single)
    assert made.keys() == reference.keys()
    for name in made:
        assert np.array_equal(np.asarray(Image.open(run_dir / "images" / name)), np.asarray(Image.open(single / name)))
    assert read_json(run_dir / "images" / "image_generation_log.json")["metadata"]["model_sha256"]


@pytest.mark.launch
@pytest.mark.slow
def test_one_process_killed_then_resume_with_one_process(setup):
    root, args, single = setup
    run_dir = root / "killed"
    run_dir.mkdir()
    images = run_dir / "images"
    # Process 1 is SIGKILLed at its second decode (after its first batch of 2 was saved); the launcher stops the rest.
    killed = accelerate_launch([str(REPO / "tests" / "helpers" / "kill_at.py"), "decode", "2", *args], cwd=run_dir,
                               env={"KILL_RANK": "1"})
    assert killed.returncode != 0
    before = [r for r in read_journal_dir(images) if r.get("type") == "image" and r["status"] == "success"]
    done_before = {(r["sample_idx"], r["prompt_id"]): r["sha256"] for r in before}
    assert 2 <= len(done_before) < 10, killed.stdout + killed.stderr

    resumed = one_process(args, cwd=run_dir)
    assert resumed.returncode == 0, resumed.stderr

    assert _pngs(images) == _pngs(single)  # complete, byte for byte
    assert not [p for p in images.rglob("*") if p.name.endswith(".tmp")]  # nothing torn left behind
    for name in ("image_generation_log.json", "image_generation_summary.json"):
        assert stable(read_json(images / name), SPLIT) == stable(read_json(single / name), SPLIT)
    after = [r for r in read_journal_dir(images) if r.get("type") == "image" and r["status"] == "success"]
    made = [(r["sample_idx"], r["prompt_id"]) for r in after]
    assert len(made) == len(set(made)) == 10  # nothing finished before the kill was made again


@pytest.mark.launch
def test_a_launch_is_refused_while_an_unrelated_run_holds_the_folder(setup):
    root, args, _ = setup
    run_dir = root / "locked"
    (run_dir / "images").mkdir(parents=True)
    lock = OutputLock(run_dir / "images").acquire()
    try:
        out = accelerate_launch(["-m", "music2image", *args], cwd=run_dir)
    finally:
        lock.release()
    # Both processes exit with 2; the launcher (torchrun's agent) then reports its own failure and exits 1.
    assert out.returncode != 0
    assert "exitcode  : 2" in out.stderr
    assert out.stderr.count("another music2image run is writing here") == 1, out.stderr  # one message per launch
    assert not any(p.suffix in (".png", ".jsonl", ".json") for p in (run_dir / "images").rglob("*"))


def test_the_main_process_follows_other_shards_by_whole_new_lines_only(tmp_path):
    from music2image.journal import Journal

    shard = tmp_path / "generation_journal.1.jsonl"
    journal = Journal(shard)
    journal.append({"type": "image", "t": 1})
    journal.append({"type": "image", "t": 2})
    records, offset = Journal.read_from(shard, 0)
    assert [r["t"] for r in records] == [1, 2] and offset == shard.stat().st_size
    with open(shard, "ab") as handle:  # another process is half-way through a line
        handle.write(b'{"type": "image", ')
    assert Journal.read_from(shard, offset) == ([], offset)  # left for next time, not lost, not garbled
    with open(shard, "ab") as handle:
        handle.write(b'"t": 3}\n')
    records, offset = Journal.read_from(shard, offset)
    assert [r["t"] for r in records] == [3] and offset == shard.stat().st_size
    journal.close()
