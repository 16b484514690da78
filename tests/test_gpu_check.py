"""benchmarks/gpu_check.py, the one command for a lent GPU, runs end to end on the CPU with the tiny model."""

import json

import pytest
from conftest import REPO, run_subprocess


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_with_the_tiny_model_and_writes_json_and_markdown(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "gpu_check.py"), "--tiny", "--budget-s", "300", "--max-images", "2",
                          "--skip-compile", "--out", "report"],
                         cwd=workdir, timeout=900)
    assert out.returncode == 0, out.stderr
    report = json.loads((workdir / "report" / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["size"] == 64 and report["steps"] == 2
    assert report["bf16_peak_tflops"] > 0
    build = report["build"]
    assert build["init_retries"] == {"vae": 0, "text_encoder": 0, "text_encoder_2": 0, "unet": 0, "refiner_unet": 0}
    # Counted, not assumed: 2 UNet steps (CFG batch) and one decode; the refiner's steps are the base's last ones.
    assert build["tflop_per_image"] == pytest.approx(2 * build["unet_step_tflop"] + build["vae_decode_tflop"], rel=1e-3)
    assert build["base_steps_with_refiner"] == 1

    phases = {p["name"]: p for p in report["phases"]}
    seed, ours = phases["seed-style loop"], phases["music2image defaults"]
    assert seed["images"] == ours["images"] >= 2 and seed["dtype"] == "float32"
    for phase in (seed, ours):
        assert phase["s_per_image"] > 0 and phase["failed"] == 0 and phase["retries"] == 0 and not phase["void"]
        assert phase["achieved_tflops"] == pytest.approx(phase["tflop_per_image"] / phase["s_per_image"], rel=1e-2)
    assert ours["ratio_to_seed_loop"] == pytest.approx(seed["s_per_image"] / ours["s_per_image"], rel=1e-2)
    # Compiling even the tiny model takes minutes on a CPU: the GPU run does it, this test only its place in the table.
    assert phases["music2image --compile"] == {"name": "music2image --compile", "skipped": "skipped: --skip-compile"}
    refiner = phases["music2image base + refiner"]
    assert refiner["images"] >= 1 and refiner["tflop_per_image"] != ours["tflop_per_image"]

    checks = {c["name"]: c for c in report["checks"]}
    assert checks["second run byte-identical"]["ok"] is True
    assert checks["batch of 2 equals singles (8-bit values within 1, float32)"]["ok"] is True
    assert checks["--vae-tiling runs"]["ok"] is True
    assert checks["--offload model runs"]["ok"] is None  # needs CUDA

    markdown = (workdir / "report" / "gpu_check.md").read_text()
    assert "| seed-style loop | 2 |" in markdown and "| second run byte-identical | pass |" in markdown
    assert markdown in out.stdout


@pytest.mark.slow
def test_gpu_check_counts_the_full_size_tflop_per_image_without_a_gpu(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "gpu_check.py"), "--count-flops"], cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    counted = json.loads(out.stdout.strip().splitlines()[-1])
    # SDXL at 768², 30 steps with CFG plus one decode: issue 15 counted 224 TFLOP per image.
    assert counted["tflop_per_image"] == pytest.approx(30 * counted["unet_step_tflop"] + counted["vae_decode_tflop"],
                                                       rel=1e-3)
    assert 200 < counted["tflop_per_image"] < 250 and counted["refiner_step_tflop"] > 0


def test_the_plan_fills_whole_batches_and_gives_the_compile_reserve_back_when_compile_is_skipped():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check_parts as parts

    # The H200's figures of 2026-11-27: 360.9 s left, a seed-loop image 2.168 s, a load 2.13 s.
    with_compile = parts.plan_counts(360.9, 2.168, 2.13, 500, batch=16)
    without = parts.plan_counts(360.9, 2.168, 2.13, 500, batch=16, compile_reserve=0.0)
    for plan in (with_compile, without):
        assert plan["images"] % 16 == 0 and plan["refiner_images"] % 16 == 0 and plan["refiner_images"] >= 16
    assert 16 <= with_compile["images"] < without["images"]
    unrounded = parts.plan_counts(360.9, 2.168, 2.13, 500, batch=1, compile_reserve=0.0)["images"]  # a CPU
    assert without["images"] <= unrounded < without["images"] + 16
    assert parts.plan_counts(10.0, 2.0, 1.0, 500, batch=16)["images"] == 2  # too little time: 2, not 0


def test_full_batches_are_the_first_whole_batches_in_job_order():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check_parts as parts

    entries = [{"sample_idx": s, "prompt_id": p, "generation_time": 1.0} for s in (2, 0, 1) for p in (1, 0)]
    kept = parts.full_batches(entries, 4)
    assert [(e["sample_idx"], e["prompt_id"]) for e in kept] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert parts.full_batches(entries, 1) == sorted(entries, key=lambda e: (e["sample_idx"], e["prompt_id"]))
    assert parts.full_batches(entries[:3], 4) == []
