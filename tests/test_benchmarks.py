"""The benchmark runs from the README's install (a smoke run on the tiny model; figures live in docs/PERFORMANCE.md)."""

import pytest
import json
import shlex

from conftest import REPO, run_subprocess


@pytest.mark.slow
def test_the_readme_benchmark_command_runs_on_the_tiny_model_and_ends_with_its_json_line(workdir):
    from test_readme import _bash_blocks

    (line,) = [c for c in _bash_blocks() if c.startswith("python benchmarks/throughput.py")]
    argv = shlex.split(line)
    out = run_subprocess([str(REPO / argv[1]), *argv[2:]], cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"model", "device", "size", "steps", "images", "seed_style_img_s", "music2image_img_s", "ratio"} <= set(record)
    assert record["model"] == "tiny" and record["images"] == 8 and record["device"] == "cpu"
    assert record["seed_style_img_s"] > 0 and record["music2image_img_s"] > 0
    assert abs(record["ratio"] - record["music2image_img_s"] / record["seed_style_img_s"]) < 0.01
    assert "(a) seed-style loop" in out.stdout and "(b) music2image" in out.stdout


@pytest.mark.slow
def test_the_profile_benchmark_names_where_the_time_goes(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "profile_image.py"), "--model", "tiny"], cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "model tiny, 64x64, 2 steps, cpu"
    seconds = {line.split(" s  ", 1)[1]: float(line.split(" s  ", 1)[0]) for line in lines[1:]}
    assert seconds["whole run (load + generate + write)"] >= seconds["generation (engine.generate)"]
    assert seconds["generation (engine.generate)"] >= seconds["pipeline denoising call"] > 0
    assert seconds["VAE decode"] > 0 and seconds["text encoding"] > 0 and seconds["model loading"] > 0


@pytest.mark.slow
def test_the_single_file_load_benchmark_runs_on_the_tiny_model(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "single_file_load.py"), "--model", "tiny", "--repeats", "1"],
                         cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["model"] == "tiny" and record["file_bytes"] > 0
    assert record["load_folder_s"] > 0 and record["load_single_file_s"] > 0
    assert abs(record["ratio"] - record["load_single_file_s"] / record["load_folder_s"]) < 0.01
    assert "sha256 of the file" in out.stdout and "Engine.load from the single file" in out.stdout


@pytest.mark.slow
def test_the_unet_variants_benchmark_compares_layouts_with_the_plain_step(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "unet_variants.py"), "--model", "tiny", "--repeats", "1"],
                         cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(record) >= {"plain", "channels_last", "fused_qkv", "channels_last+fused_qkv"}
    assert record["plain"]["speedup"] == 1.0 and record["plain"]["max_abs_diff"] == 0.0
    assert all(record[name]["seconds"] > 0 for name in ("channels_last", "fused_qkv", "channels_last+fused_qkv"))
    # The same function: fusing Q, K and V into one matmul, or another memory layout, moves outputs by bfloat16
    # rounding at most (this tiny UNet's outputs are of order 1).
    assert all(record[name]["max_abs_diff"] < 0.05 for name in ("channels_last", "fused_qkv", "channels_last+fused_qkv"))


@pytest.mark.slow
def test_the_resume_scale_benchmark_runs_every_phase_on_a_small_folder(workdir):
    """It once broke unseen: `--dtype auto` became bfloat16 on this CPU, and its folder (built as float32) was then
    refused by the generate phase."""
    out = run_subprocess([str(REPO / "benchmarks" / "resume_scale.py"), "--prompts", "50", "--workdir", "work"],
                         cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("this checkout")]
    assert [row[2] for row in rows] == ["plan", "resume", "verify", "legacy", "generate"]
    assert all(row[-1] == "50" for row in rows)  # every phase finds all 50 images finished


def test_the_prompts_jobs_benchmark_finds_the_same_bytes_from_every_run(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "prompts_jobs.py"), "--clips", "4", "--seconds", "5",
                          "--jobs", "2"], cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.splitlines()[-1])
    assert figures["same_bytes"] and figures["files"] == 4 and set(figures["runs"]) == {
        "one process", "2 workers", "2 workers, keeping analyses", "again, every analysis kept"}
