"""The benchmark runs from the README's install (a smoke run on the tiny model; figures live in docs/PERFORMANCE.md)."""

import json
import sys

from conftest import REPO, run_subprocess


def test_throughput_benchmark_runs_on_the_tiny_model_and_ends_with_its_json_line(workdir):
    out = run_subprocess([str(REPO / "benchmarks" / "throughput.py"), "--model", "tiny", "--prompts", "4",
                          "--size", "64", "--steps", "2"], cwd=workdir, timeout=600)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"model", "device", "size", "steps", "images", "seed_style_img_s", "music2image_img_s", "ratio"} <= set(record)
    assert record["model"] == "tiny" and record["images"] == 4 and record["device"] == "cpu"
    assert record["seed_style_img_s"] > 0 and record["music2image_img_s"] > 0
    assert abs(record["ratio"] - record["music2image_img_s"] / record["seed_style_img_s"]) < 0.01
    assert "(a) seed-style loop" in out.stdout and "(b) music2image" in out.stdout
