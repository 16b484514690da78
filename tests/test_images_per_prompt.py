"""Several images per prompt (--images-per-prompt K) and shared seeds (--seed-scope sample): the controls that let
convergent and divergent images be compared without seed noise standing in for prompt differences."""

import json

from conftest import SMALL, model_flags, read_json, run_cli
from PIL import Image

from music2image.plan import image_relpath, image_seed


def _entries(workdir, folder="images"):
    return read_json(workdir / folder / "image_generation_log.json")["generated_images"]


def test_k_images_per_prompt_with_stable_names_and_seeds(ten_prompts, tiny_model, workdir):
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--samples", "1", "--quiet"]
    assert run_cli(*flags, "--images-per-prompt", "3") == 0
    entries = _entries(workdir)
    assert [(e["prompt_id"], e["image_index"]) for e in entries] == [(p, k) for p in range(5) for k in range(3)]
    # k = 0 keeps the one-image name and seed of every earlier version; the others get _kNN.
    assert entries[0]["image_path"] == "sample_000/sample_000_prompt_00.png"
    assert entries[1]["image_path"] == "sample_000/sample_000_prompt_00_k01.png"
    assert [e["seed"] for e in entries[:3]] == [image_seed(0, 0, 0, k) for k in range(3)]
    assert entries[0]["seed"] == image_seed(0, 0, 0)
    assert len({e["seed"] for e in entries}) == 15
    metadata = read_json(workdir / "images" / "image_generation_log.json")["metadata"]
    assert metadata["images_per_prompt"] == 3 and metadata["total_images"] == 15 and metadata["total_prompts"] == 5
    summary = read_json(workdir / "images" / "image_generation_summary.json")
    assert summary["total_images_generated"] == 15 and summary["by_mode"] == {"convergent": 9, "divergent": 6}
    recipe = json.loads(Image.open(workdir / "images" / entries[1]["image_path"]).text["music2image"])
    assert recipe["image_index"] == 1 and recipe["seed"] == entries[1]["seed"]


def test_adding_images_later_keeps_the_first_ones_and_makes_only_the_new(ten_prompts, tiny_model, workdir):
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--samples", "1", "--limit", "2", "--quiet"]
    assert run_cli(*flags, "--images-per-prompt", "2") == 0
    first = {p.name: p.read_bytes() for p in (workdir / "images").rglob("*.png")}
    assert run_cli(*flags, "--images-per-prompt", "4") == 0
    after = {p.name: p.read_bytes() for p in (workdir / "images").rglob("*.png")}
    assert len(first) == 4 and len(after) == 8
    assert all(after[name] == data for name, data in first.items())
    metadata = read_json(workdir / "images" / "image_generation_log.json")["metadata"]
    assert metadata["generated_this_run"] == 4
    # Going back to one image per prompt: the first images are still done, and the log is the seed's shape again.
    assert run_cli(*flags) == 0
    entries = [e for e in _entries(workdir) if e.get("in_selection", True)]
    assert len(entries) == 2 and "image_index" not in entries[0]
    # The folder's other finished images (k = 1..3) are still described, marked as outside this selection.
    assert len([e for e in _entries(workdir) if e.get("in_selection") is False]) == 6
    assert read_json(workdir / "images" / "image_generation_log.json")["metadata"]["generated_this_run"] == 0


def test_a_batch_of_k_images_equals_k_single_runs(ten_prompts, tiny_model, workdir):
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "1", "--images-per-prompt", "3", "--quiet",
             "--dtype", "float32"]  # the README's batch tolerance is float32's
    assert run_cli(*flags, "--batch-size", "3", "--output-dir", "batched") == 0
    assert run_cli(*flags, "--batch-size", "1", "--output-dir", "single") == 0
    for k in range(3):
        path = image_relpath(0, 0, "png", k)
        batched = Image.open(workdir / "batched" / path).convert("RGB").tobytes()
        single = Image.open(workdir / "single" / path).convert("RGB").tobytes()
        # README: another batch is equal within 1e-5 before rounding, so at most 1 in 8 bits.
        assert max(abs(a - b) for a, b in zip(batched, single)) <= 1


def test_seed_scope_sample_shares_each_images_seed_across_a_samples_prompts(ten_prompts, tiny_model, workdir):
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--quiet", "--images-per-prompt", "2",
             "--seed-scope", "sample"]
    assert run_cli(*flags) == 0
    entries = _entries(workdir)
    for sample in (0, 1):
        for k in (0, 1):
            seeds = {e["seed"] for e in entries if e["sample_idx"] == sample and e["image_index"] == k}
            assert seeds == {image_seed(0, sample, 0, k, "sample")}
    assert image_seed(0, 0, 0, 0, "sample") != image_seed(0, 1, 0, 0, "sample")
    recipe = json.loads(Image.open(workdir / "images" / entries[0]["image_path"]).text["music2image"])
    assert recipe["recipe"]["seed_scope"] == "sample"
    # Another seed scope is another recipe: resume refuses to mix them in one folder.
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--quiet", "--images-per-prompt", "2") == 2


def test_regenerate_remakes_the_kth_image_byte_for_byte(ten_prompts, tiny_model, workdir):
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "1", "--images-per-prompt", "2", "--quiet"]
    assert run_cli(*flags) == 0
    image = workdir / "images" / image_relpath(0, 0, "png", 1)
    assert run_cli("regenerate", str(image), "--output", str(workdir / "again.png")) == 0
    assert (workdir / "again.png").read_bytes() == image.read_bytes()


def test_bad_images_per_prompt_and_seed_scope_are_usage_errors(ten_prompts, tiny_model, workdir, capsys):
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--images-per-prompt", "0") == 2
    assert "--images-per-prompt 0: must be a whole number from 1 to 1000" in capsys.readouterr().err
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--seed-scope", "image") == 2
    assert not (workdir / "images").exists()
