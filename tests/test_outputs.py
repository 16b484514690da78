"""Outputs people can use: recipes inside images, show/regenerate, grids, gallery, summary, formats."""

import json
import re
import shutil
import subprocess

import pytest
from conftest import (
    CHROMIUM_FLAGS,
    SMALL,
    chromium_path,
    dump_dom,
    model_flags,
    prompts_doc,
    read_json,
    run_cli,
    run_subprocess,
)
from PIL import Image

from music2image.outputs import a1111_parameters, a1111_quote, read_image_text

HOSTILE = '<script>alert("x")</script> "quoted" & <b>bold</b>, colon: yes'


@pytest.fixture
def made(workdir, tiny_model):
    """A finished run of 3 samples (one skipped, one image failed by a bad decode would need injection: we
    mark one failed through the log instead, as a user editing nothing would see after a real failure)."""
    doc = prompts_doc(samples=3, error_samples=(1,))
    doc["samples"][2]["prompts"][3]["visual_prompt"] = HOSTILE
    (workdir / "p.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL,
                   "--negative-prompt", "blurry, low quality") == 0
    return workdir / "images"


def test_a1111_quoting():
    assert a1111_quote("Euler a") == "Euler a"
    assert a1111_quote("a, b") == '"a, b"' and a1111_quote("k: v") == '"k: v"' and a1111_quote("x\ny") == '"x\\ny"'
    text = a1111_parameters("a cat", "ugly", {"Steps": 30, "Sampler": "DPM++ 2M Karras", "Model": "org/m:v", "Skip": None})
    assert text == 'a cat\nNegative prompt: ugly\nSteps: 30, Sampler: DPM++ 2M Karras, Model: "org/m:v"'


def test_every_png_carries_a1111_parameters_and_the_full_recipe(made, tiny_model):
    entry = read_json(made / "image_generation_log.json")["generated_images"][0]
    text = read_image_text(made / entry["image_path"])
    lines = text["parameters"].split("\n")
    assert lines[0] == entry["visual_prompt"]
    assert lines[1] == "Negative prompt: blurry, low quality"
    assert lines[2] == (f"Steps: 2, Sampler: Euler, CFG scale: 5.0, Seed: {entry['seed']}, Size: 64x64, "
                        f"Model: {tiny_model / 'base'}, Version: music2image 0.1.0")
    recipe = json.loads(text["music2image"])
    assert (recipe["sample_idx"], recipe["prompt_id"], recipe["mode"], recipe["temperature"], recipe["seed"]) == \
        (entry["sample_idx"], entry["prompt_id"], entry["mode"], entry["temperature"], entry["seed"])
    assert recipe["recipe"]["negative_prompt"] == "blurry, low quality" and recipe["recipe"]["steps"] == 2
    assert {"torch", "diffusers", "transformers", "music2image"} <= set(recipe["versions"])


def test_show_prints_the_recipe(made, capsys):
    path = made / "sample_000" / "sample_000_prompt_01.png"
    assert run_cli("show", str(path)) == 0
    out = capsys.readouterr().out
    assert "Negative prompt: blurry, low quality" in out and '"prompt_id": 1' in out
    assert run_cli("show", str(path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["prompt_id"] == 1


def test_show_and_regenerate_refuse_images_without_a_recipe(workdir, capsys):
    Image.new("RGB", (8, 8)).save(workdir / "plain.png")
    (workdir / "text.png").write_text("not an image")
    assert run_cli("show", "plain.png") == 2
    assert "has no music2image recipe" in capsys.readouterr().err
    assert run_cli("regenerate", "text.png") == 2
    assert "cannot read the image" in capsys.readouterr().err
    assert run_cli("show", "missing.png") == 2


def test_regenerate_is_byte_identical(made, workdir):
    original = made / "sample_002" / "sample_002_prompt_03.png"
    assert run_cli("regenerate", str(original), "--output", "again.png") == 0
    assert (workdir / "again.png").read_bytes() == original.read_bytes()
    assert run_cli("regenerate", str(made / "sample_000" / "sample_000_prompt_00.png")) == 0
    assert (made / "sample_000" / "sample_000_prompt_00.regenerated.png").read_bytes() == \
        (made / "sample_000" / "sample_000_prompt_00.png").read_bytes()


def test_regenerate_to_a_place_it_cannot_write_is_one_message_before_the_model_loads(made, workdir, capsys,
                                                                                     monkeypatch):
    """Before, the model was loaded and the image made, then writing it was a traceback (NotADirectoryError)."""
    from music2image.engine import Engine

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Engine, "load", refuse)
    (workdir / "notes.txt").write_text("a file, not a folder")
    original = made / "sample_000" / "sample_000_prompt_00.png"
    assert run_cli("regenerate", str(original), "--output", "notes.txt/again.png") == 2
    assert capsys.readouterr().err == ("music2image: error: notes.txt/again.png: cannot be written: notes.txt is not "
                                       "a folder; nothing was written\n")
    assert run_cli("regenerate", str(original), "--output", "images") == 2  # a folder is in the way
    assert capsys.readouterr().err == ("music2image: error: images: cannot be written: it is a folder (give a file "
                                       "name); nothing was written\n")


def test_regenerate_elsewhere_says_the_recipe_names_a_relative_path(workdir, tiny_model, capsys, monkeypatch):
    """`generate --model models/base` records the path as given. Before, regenerate run from another folder (the
    output folder, say) read it as a hub id and printed the hub's "not cached" error about a --model flag it was
    never given; now it says what the recipe names and from where it works."""
    (workdir / "models").symlink_to(tiny_model)
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    assert run_cli("generate", "--prompts-file", "p.json", "--model", "models/base", *SMALL) == 0
    monkeypatch.chdir(workdir / "images")
    capsys.readouterr()
    assert run_cli("regenerate", "sample_000/sample_000_prompt_00.png", "--output", "again.png") == 2
    assert capsys.readouterr().err == (
        "music2image: error: sample_000/sample_000_prompt_00.png: its recipe names models/base (model), not found "
        f"from here ({workdir / 'images'}): a path relative to the folder the image was made in; run regenerate "
        "from that folder\n")
    assert not (workdir / "images" / "again.png").exists()
    monkeypatch.chdir(workdir)
    assert run_cli("regenerate", "images/sample_000/sample_000_prompt_00.png", "--output", "again.png") == 0


@pytest.mark.parametrize("image_format, suffix", [("webp", ".webp"), ("jpeg", ".jpg")])
def test_other_formats_keep_the_recipe(image_format, suffix, prompts_file, tiny_model, workdir, capsys):
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1", "--format", image_format) == 0
    path = workdir / "images" / "sample_000" / f"sample_000_prompt_00{suffix}"
    assert Image.open(path).format == image_format.upper()
    assert read_image_text(path)["parameters"].startswith("golden concert stage")
    capsys.readouterr()
    assert run_cli("show", str(path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["recipe"]["image_format"] == image_format
    assert run_cli("regenerate", str(path), "--output", f"again{suffix}") == 0
    assert (workdir / f"again{suffix}").read_bytes() == path.read_bytes()


def test_vae_flag_loads_another_vae_and_records_it(prompts_file, tiny_model, workdir):
    vae = str(tiny_model / "base" / "vae")
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1", "--vae", vae, "--output-dir", "v") == 0
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1", "--output-dir", "plain") == 0
    made = workdir / "v" / "sample_000" / "sample_000_prompt_00.png"
    assert json.loads(read_image_text(made)["music2image"])["recipe"]["vae"] == vae
    # The same weights as the pipeline's own VAE: the same pixels.
    assert Image.open(made).tobytes() == Image.open(workdir / "plain" / "sample_000" / "sample_000_prompt_00.png").tobytes()


@pytest.mark.slow
def test_a_hub_model_records_the_commit_it_was_loaded_from(prompts_file, tiny_model, workdir):
    """A hub id, loaded offline from the local Hugging Face cache: the snapshot's commit goes into every image."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = workdir / "hub" / "models--someone--tiny-sdxl"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_model / "base", repo / "snapshots" / commit)
    env = {"HF_HUB_CACHE": str(workdir / "hub"), "HF_HUB_OFFLINE": "1"}
    out = run_subprocess(["-m", "music2image", "generate", "--model", "someone/tiny-sdxl", *SMALL, "--limit", "1",
                          "--quiet"], cwd=workdir, env=env)
    assert out.returncode == 0, out.stderr
    image = next((workdir / "images").rglob("*.png"))
    document = json.loads(read_image_text(image)["music2image"])
    assert document["recipe"]["model"] == "someone/tiny-sdxl"
    assert document["revisions"] == {"model": commit}
    assert read_json(workdir / "images" / "image_generation_log.json")["metadata"]["model_revisions"] == {"model": commit}
    # A local folder has no commit to record.
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1", "--output-dir", "local") == 0
    assert "revisions" not in json.loads(read_image_text(next((workdir / "local").rglob("*.png")))["music2image"])


def test_summary_table_and_json(made, capsys):
    assert run_cli("summary", str(made)) == 0
    out = capsys.readouterr().out
    assert "success rate 100.0%: 10 of 10 images, 0 failed, 1 samples skipped" in out
    assert re.search(r"^\s+0\s+3\s+2\s+0$", out, re.M)
    assert "skipped samples:\n  sample 1: error from the audio stage: audio decode failed" in out  # from the log
    assert run_cli("summary", str(made), "--json") == 0
    assert json.loads(capsys.readouterr().out) == read_json(made / "image_generation_summary.json")
    assert run_cli("summary", "nowhere") == 2


def test_grids_one_per_sample_plus_overview(made):
    assert run_cli("grid", str(made), "--thumb-size", "96", "--overview-thumb-size", "48") == 0
    grids = made / "grids"
    # The overview is paged (overview_001.png, ...: issue 12, item 14); three samples fit on its first page.
    assert sorted(p.name for p in grids.iterdir()) == ["overview_001.png", "sample_000.png", "sample_002.png"]
    sheet = Image.open(grids / "sample_000.png")
    assert sheet.width == 6 + 5 * (96 + 6) and sheet.height > 96
    assert Image.open(grids / "overview_001.png").width == 6 + 5 * (48 + 6)


def test_grid_shows_failed_images_as_failed(made):
    log = read_json(made / "image_generation_log.json")
    log["generated_images"][1].update(status="failed", image_path=None, error="all-black image")
    (made / "image_generation_log.json").write_text(json.dumps(log))
    assert run_cli("grid", str(made), "--thumb-size", "64") == 0
    sheet = Image.open(made / "grids" / "sample_000.png").convert("RGB")
    title = max(14, 64 // 9) + 8
    assert sheet.getpixel((6 + 70 + 40, title + 40)) == (60, 20, 20)  # the failed tile's colour


def test_gallery_escapes_prompts_and_caches_thumbnails(made):
    assert run_cli("gallery", str(made), "--thumb-size", "64") == 0
    page = (made / "index.html").read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page  # nothing from the network
    thumbs = sorted((made / "thumbs" / "64").iterdir())
    assert len(thumbs) == 10
    stamps = [t.stat().st_mtime_ns for t in thumbs]
    assert run_cli("gallery", str(made), "--thumb-size", "64") == 0
    assert [t.stat().st_mtime_ns for t in thumbs] == stamps  # made once, reused


@pytest.mark.browser
def test_gallery_in_a_real_browser(made, tmp_path):
    chromium = chromium_path()
    log = read_json(made / "image_generation_log.json")
    log["generated_images"][1].update(status="failed", image_path=None, error="CUDA out of memory")
    (made / "image_generation_log.json").write_text(json.dumps(log))
    assert run_cli("gallery", str(made)) == 0
    url = (made / "index.html").as_uri()

    dom = dump_dom(chromium, url, tmp_path)
    assert len(re.findall(r'<section class="sample" id="sample-\d+"', dom)) == 2
    assert len(re.findall(r'<img loading="lazy" src="thumbs/256/', dom)) == 9
    assert dom.count('class="card failed"') == 1 and "CUDA out of memory" in dom
    assert "Sample 1: skipped" in dom
    assert "<b>bold</b>" not in dom and "&lt;b&gt;bold&lt;/b&gt;" in dom  # still text after the scripts ran
    assert 'data-mode="all"' in dom  # the script ran: body carries the active filter

    filtered = dump_dom(chromium, url + "#mode=divergent", tmp_path)
    assert 'data-mode="divergent"' in filtered
    hidden_cards = re.findall(r'<figure class="card [a-z]+" data-mode="(\w+)" data-status="\w+" hidden', filtered)
    assert sorted(hidden_cards) == ["convergent"] * 6
    assert re.search(r'<div class="group" data-mode="convergent" hidden', filtered)

    shot = tmp_path / "gallery.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1280,900",
                    "--virtual-time-budget=3000", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    picture = Image.open(shot).convert("RGB")
    assert picture.size == (1280, 900)
    assert len(set(picture.resize((64, 64)).getdata())) > 50  # images and text, not a blank page


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal_and_quiet(prompts_file, tiny_model, workdir):
    out = run_subprocess(["-m", "music2image", "generate", *model_flags(tiny_model), *SMALL, "--limit", "2"], cwd=workdir)
    assert out.returncode == 0
    assert "it/s" not in out.stderr and "img/s" not in out.stderr  # no bars in a pipe: a clean log
    assert "device: cpu" in out.stderr
    out = run_subprocess(["-m", "music2image", "generate", *model_flags(tiny_model), *SMALL, "--limit", "3", "--quiet"],
                         cwd=workdir)
    assert out.returncode == 0 and "device: cpu" not in out.stderr


def test_json_documents_are_written_as_encoded_the_same_bytes_as_json_dumps(tmp_path):
    from music2image.outputs import Files

    document = {"metadata": {"prompts_file": "ünïcode ✓.json", "ratio": 0.1 + 0.2, "none": None},
                "generated_images": [{"sample_idx": i, "visual_prompt": f"a \"quoted\" sea {i}\n", "ok": i % 2 == 0}
                                     for i in range(5000)]}
    received = []

    class Watching(Files):
        def write_temporary(self, tmp, data):
            received.append(data)
            return super().write_temporary(tmp, data)

    Watching().write_json(tmp_path / "log.json", document)
    assert (tmp_path / "log.json").read_bytes() == (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    # Streamed: the writer gets chunks as they are encoded, not the whole text (a 100k-image log held as one
    # string peaked at ~300 MB more).
    assert not isinstance(received[0], bytes)
