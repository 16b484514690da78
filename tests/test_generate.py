"""End to end through the CLI and the seed's shim on the tiny model: layout, JSON keys, counts, selection."""

import json
from pathlib import Path

import pytest
from conftest import REPO, SMALL, model_flags, prompts_doc, read_json, run_cli, run_subprocess

LOG_METADATA_KEYS = {"prompts_file", "generation_timestamp", "total_prompts", "image_height", "image_width",
                     "num_inference_steps", "use_refiner", "device", "successful", "failed"}
LOG_ENTRY_KEYS = {"sample_idx", "prompt_id", "mode", "temperature", "visual_prompt", "image_path", "status"}
SUMMARY_KEYS = {"generation_timestamp", "total_images_generated", "total_images_failed", "success_rate", "by_mode",
                "by_sample", "image_dimensions", "inference_steps", "used_refiner", "device", "output_directory"}


def test_default_paths_layout_and_every_seed_key(prompts_file, tiny_model, workdir, capsys):
    # The seed's command line: default --prompts-file and --output-dir, relative to the working directory.
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--device", "cpu") == 0
    images = workdir / "images"
    pngs = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))
    assert pngs == [f"sample_{s:03d}/sample_{s:03d}_prompt_{p:02d}.png" for s in (0, 2) for p in range(5)]

    log = read_json(images / "image_generation_log.json")
    assert LOG_METADATA_KEYS <= set(log["metadata"])
    meta = log["metadata"]
    assert meta["prompts_file"] == "generated_prompts/visual_prompts_complete.json"
    assert (meta["total_prompts"], meta["successful"], meta["failed"]) == (10, 10, 0)
    assert (meta["image_width"], meta["image_height"], meta["num_inference_steps"]) == (64, 64, 2)
    assert meta["use_refiner"] is False and meta["device"] == "cpu"
    assert len(log["generated_images"]) == 10
    for entry in log["generated_images"]:
        assert LOG_ENTRY_KEYS <= set(entry)
        assert entry["status"] == "success"
        assert (images / entry["image_path"]).is_file()
        assert entry["image_path"] == f"sample_{entry['sample_idx']:03d}/sample_{entry['sample_idx']:03d}_prompt_{entry['prompt_id']:02d}.png"
    assert log["skipped_samples"] == [{"sample_idx": 1, "reason": "error from the audio stage: audio decode failed"}]

    summary = read_json(images / "image_generation_summary.json")
    assert SUMMARY_KEYS <= set(summary)
    assert summary["total_images_generated"] == 10 and summary["total_images_failed"] == 0
    assert summary["success_rate"] == 100.0
    assert summary["by_mode"] == {"convergent": 6, "divergent": 4}
    assert summary["by_sample"] == {"0": {"convergent": 3, "divergent": 2, "failed": 0},
                                    "2": {"convergent": 3, "divergent": 2, "failed": 0}}
    assert summary["image_dimensions"] == "64x64" and summary["inference_steps"] == 2
    assert summary["used_refiner"] is False and summary["device"] == "cpu"
    assert summary["output_directory"] == "images"

    text_log = (images / "generate_images.log").read_text()
    assert "device: cpu" in text_log  # the seed's troubleshooting greps for this line
    assert "skipping sample 1" in text_log
    assert "skipping sample 1" in capsys.readouterr().err


def test_seed_analysis_snippets_run_unchanged(prompts_file, tiny_model, workdir):
    assert run_cli("generate", *model_flags(tiny_model), *SMALL) == 0
    # The two snippets of the seed's "Analysis" section, verbatim in spirit: they read the files as the seed wrote them.
    analysis_log = """
import json
with open('images/image_generation_log.json') as f:
    log = json.load(f)
convergent = [img for img in log['generated_images'] if img['mode'] == 'convergent']
divergent = [img for img in log['generated_images'] if img['mode'] == 'divergent']
print(f"Convergent images: {len(convergent)}")
print(f"Divergent images: {len(divergent)}")
"""
    analysis_summary = """
import json
with open('images/image_generation_summary.json') as f:
    summary = json.load(f)
print(f"Success rate: {summary['success_rate']}%")
for sample_idx, counts in summary['by_sample'].items():
    print(f"Sample {sample_idx}: {counts['convergent']} convergent, {counts['divergent']} divergent")
"""
    out = run_subprocess(["-c", analysis_log], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["Convergent images: 6", "Divergent images: 4"]
    out = run_subprocess(["-c", analysis_summary], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Success rate: 100.0%", "Sample 0: 3 convergent, 2 divergent",
                                       "Sample 2: 3 convergent, 2 divergent"]


@pytest.mark.slow
def test_seed_shim_runs_generate_with_the_same_flags(prompts_file, tiny_model, workdir):
    out = run_subprocess([str(REPO / "generate_images_from_prompts.py"), *model_flags(tiny_model), *SMALL,
                          "--samples", "1", "--output-dir", "images_batch1"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (workdir / "images_batch1").rglob("*.png")) == [
        f"sample_000_prompt_{p:02d}.png" for p in range(5)]
    assert "device: cpu" in (workdir / "images_batch1" / "generate_images.log").read_text()
    help_text = run_subprocess([str(REPO / "generate_images_from_prompts.py"), "--help"], cwd=workdir).stdout
    for flag in ("--width", "--height", "--steps", "--refiner", "--device", "--limit", "--samples", "--no-save",
                 "--prompts-file", "--output-dir", "exit codes"):
        assert flag in help_text


@pytest.mark.slow
def test_python_module_entry_point(prompts_file, tiny_model, workdir):
    out = run_subprocess(["-m", "music2image", "generate", *model_flags(tiny_model), *SMALL, "--limit", "1"], cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert len(list((workdir / "images").rglob("*.png"))) == 1


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--limit", "3"], [(0, 0), (0, 1), (0, 2)]),
        (["--samples", "1"], [(0, p) for p in range(5)]),
        (["--samples", "2"], [(0, p) for p in range(5)]),  # the first 2 samples are 0 and 1 (an error sample)
        (["--samples", "3", "--limit", "7"], [(0, p) for p in range(5)] + [(2, 0), (2, 1)]),
        (["--sample-range", "2:4"], [(2, p) for p in range(5)] + [(3, p) for p in range(5)]),
        (["--sample-range", "3:", "--limit", "2"], [(3, 0), (3, 1)]),
    ],
)
def test_selection_flags(flags, expected, workdir, tiny_model):
    # Sample 1 is an error sample: --samples counts it (first N samples of the file) but it yields no prompts.
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=4, error_samples=(1,))))
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL, *flags) == 0
    log = read_json(workdir / "images" / "image_generation_log.json")
    assert [(e["sample_idx"], e["prompt_id"]) for e in log["generated_images"]] == expected
    assert log["metadata"]["total_prompts"] == len(expected)


def test_no_save_writes_both_json_files_and_no_images(prompts_file, tiny_model, workdir):
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--device", "cpu", "--no-save", "--limit", "2") == 0
    images = workdir / "images"
    assert not list(images.rglob("*.png"))
    log = read_json(images / "image_generation_log.json")
    assert [e["status"] for e in log["generated_images"]] == ["success", "success"]
    assert all(e["image_path"] is None for e in log["generated_images"])
    assert read_json(images / "image_generation_summary.json")["total_images_generated"] == 2


def test_refiner_path(prompts_file, tiny_model, workdir):
    assert run_cli("generate", *model_flags(tiny_model, refiner=True), *SMALL[:4], "--steps", "4", "--limit", "2") == 0
    log = read_json(workdir / "images" / "image_generation_log.json")
    assert log["metadata"]["use_refiner"] is True and log["metadata"]["successful"] == 2
    assert read_json(workdir / "images" / "image_generation_summary.json")["used_refiner"] is True
    # And the refiner changes the pixels compared with base only.
    assert run_cli("generate", *model_flags(tiny_model), *SMALL[:4], "--steps", "4", "--limit", "2",
                   "--output-dir", "base_only") == 0
    refined = (workdir / "images" / "sample_000" / "sample_000_prompt_00.png").read_bytes()
    base = (workdir / "base_only" / "sample_000" / "sample_000_prompt_00.png").read_bytes()
    assert refined != base


def test_tiny_shortcut_builds_once_into_the_cache(prompts_file, workdir, _hermetic_cache):
    assert run_cli("generate", "--model", "tiny", "--refiner", "--refiner-model", "tiny", *SMALL[:4], "--steps", "3",
                   "--limit", "1") == 0
    from music2image.tiny import TINY_MODEL_VERSION

    built = _hermetic_cache / "music2image" / f"tiny-sdxl-v{TINY_MODEL_VERSION}"
    assert (built / "base" / "model_index.json").is_file() and (built / "base.safetensors").is_file()
    assert read_json(workdir / "images" / "image_generation_summary.json")["total_images_generated"] == 1


def test_all_samples_skipped_is_a_valid_empty_run(workdir):
    (workdir / "p.json").write_text(json.dumps({"samples": [{"sample_idx": 0, "error": "x"}, {"sample_idx": 1, "prompts": []}]}))
    assert run_cli("generate", "--prompts-file", "p.json", "--model", "tiny") == 0
    summary = read_json(workdir / "images" / "image_generation_summary.json")
    assert summary["total_images_generated"] == 0 and summary["skipped_samples"] == [0, 1]


def test_python_api_with_a_custom_prompts_file_and_a_dict(tiny_model, workdir):
    from music2image import BatchImageGenerator, RunResult

    # The seed's "Using with Different Prompts" example: write a custom prompts JSON, build a generator on it.
    custom = {"samples": [{"sample_idx": 0, "prompts": [
        {"prompt_id": 0, "mode": "convergent", "temperature": 0.4, "visual_prompt": "A red bicycle in the rain"}]}]}
    Path("custom_prompts.json").write_text(json.dumps(custom))
    generator = BatchImageGenerator(prompts_file="custom_prompts.json", output_dir="custom_images",
                                    width=64, height=64, steps=2, refiner=False, device="cpu",
                                    model=str(tiny_model / "base"))
    result = generator.run()
    assert isinstance(result, RunResult)
    assert (result.successful, result.failed, result.exit_status) == (1, 0, 0)
    assert result.images[0].image_path == "sample_000/sample_000_prompt_00.png"
    assert (workdir / "custom_images" / result.images[0].image_path).is_file()

    from_dict = BatchImageGenerator(custom, "from_dict", width=64, height=64, steps=2, model=str(tiny_model / "base")).run()
    assert (workdir / "from_dict" / "sample_000" / "sample_000_prompt_00.png").read_bytes() == \
        (workdir / "custom_images" / "sample_000" / "sample_000_prompt_00.png").read_bytes()
    with pytest.raises(TypeError, match="unknown settings: stpes"):
        BatchImageGenerator(custom, stpes=3)
    assert from_dict.total_prompts == 1
