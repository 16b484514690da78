"""Several images per prompt (--images-per-prompt K) and shared seeds (--seed-scope sample): the controls that let
convergent and divergent images be compared without seed noise standing in for prompt differences."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CHROMIUM_FLAGS, SMALL, chromium_path, dump_dom, model_flags, read_json, run_cli
from PIL import Image

from music2image.outputs import encode_image
from music2image.plan import image_relpath, image_seed

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from dom import parse  # noqa: E402


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
    kept = [e for e in _entries(workdir) if e.get("in_selection") is False]
    assert [(e["prompt_id"], e["image_index"]) for e in kept] == [(p, k) for p in range(2) for k in (1, 2, 3)]
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


# The reports show a prompt's K images as one group -------------------------------------------------------------
def _colour(prompt_id: int, k: int) -> tuple[int, int, int]:
    return 30 + 40 * prompt_id, 40 + 60 * k, 200 - 30 * prompt_id


def _folder(root: Path, k: int, samples: int = 2, size: int = 16) -> Path:
    """An output folder as `generate --images-per-prompt K` writes it, without a model: each image one solid colour
    that says its (prompt, k), so a tile's place on a sheet can be checked by its pixels."""
    folder = root / f"k{k}"
    entries = []
    for sample_idx in range(samples):
        (folder / f"sample_{sample_idx:03d}").mkdir(parents=True)
        for prompt_id in range(5):
            mode, temperature = ("convergent", 0.4) if prompt_id < 3 else ("divergent", 0.8)
            prompt = f"prompt text {sample_idx}-{prompt_id}, a lake under <b>stars</b>"
            for image_index in range(k):
                relative = image_relpath(sample_idx, prompt_id, "png", image_index)
                pixels = np.full((size, size, 3), _colour(prompt_id, image_index), np.uint8)
                (folder / relative).write_bytes(encode_image(pixels, "png", {"parameters": prompt}))
                entry = {"sample_idx": sample_idx, "prompt_id": prompt_id, "mode": mode, "temperature": temperature,
                         "visual_prompt": prompt, "image_path": relative, "status": "success",
                         "seed": image_seed(0, sample_idx, prompt_id, image_index), "error": None}
                entries.append({**entry, "image_index": image_index} if k > 1 else entry)
    log = {"metadata": {"successful": len(entries), "failed": 0, "image_width": size, "image_height": size,
                        **({"images_per_prompt": k} if k > 1 else {})},
           "generated_images": entries, "skipped_samples": []}
    (folder / "image_generation_log.json").write_text(json.dumps(log))
    return folder


def _fail(folder: Path, sample_idx: int, prompt_id: int, image_index: int) -> None:
    log = read_json(folder / "image_generation_log.json")
    for entry in log["generated_images"]:
        if (entry["sample_idx"], entry["prompt_id"], entry.get("image_index", 0)) == (sample_idx, prompt_id,
                                                                                       image_index):
            entry.update(status="failed", image_path=None, error="all-black image")
    (folder / "image_generation_log.json").write_text(json.dumps(log))


def _check_groups(section, sample_idx: int, k: int, failed: tuple = ()) -> None:
    """SECTION (a sample of the gallery) holds one group per prompt: its text once, its K images in k order with
    their seeds; the image in FAILED = (prompt_id, k) shown as failed in its place."""
    groups = section.find_all("div", "prompt-group")
    assert [g.attrs["data-prompt"] for g in groups] == ["0", "1", "2", "3", "4"]
    for prompt_id, group in enumerate(groups):
        prompt = f"prompt text {sample_idx}-{prompt_id}, a lake under <b>stars</b>"
        assert group.text.count(prompt) == 1 and group.find(cls="prompt-head").text.count(prompt) == 1
        assert group.find(cls="temp").text == ("T=0.4" if prompt_id < 3 else "T=0.8")
        cards = group.find_all("figure", "card")
        assert [c.attrs["data-k"] for c in cards] == [str(i) for i in range(k)]
        assert [c.find(cls="k").text for c in cards] == [f"k={i}" for i in range(k)]
        assert [c.find(cls="seed").text for c in cards] == [f"seed {image_seed(0, sample_idx, prompt_id, i)}"
                                                            for i in range(k)]
        states = ["failed" if (prompt_id, i) in failed else "ok" for i in range(k)]
        assert [c.classes[1] for c in cards] == states
        assert [bool(c.find("img")) for c in cards] == [s == "ok" for s in states]
    assert section.find_all("div", "group")[0].attrs["data-mode"] == "convergent"
    assert len(section.find_all("div", "group")[0].find_all("div", "prompt-group")) == 3


def test_the_gallery_groups_each_prompts_images_and_one_image_per_prompt_looks_as_before(tmp_path):
    folder = _folder(tmp_path, k=3)
    _fail(folder, 0, 2, 1)
    assert run_cli("gallery", str(folder), "--thumb-size", "16") == 0
    page = parse((folder / "index.html").read_text())
    sections = page.find_all("section", "sample")
    assert len(sections) == 2
    _check_groups(sections[0], 0, 3, failed={(2, 1)})
    _check_groups(sections[1], 1, 3)
    assert "all-black image" in sections[0].find_all("div", "prompt-group")[2].text
    # The lightbox's label says which image of the prompt it is.
    recipes = json.loads(next(s for s in page.find_all("script") if s.attrs.get("id") == "recipes").children[0])
    assert recipes[1]["label"] == "sample 0 #0 convergent T=0.4 k=1"
    # Paged as before: 50 samples a page.
    assert run_cli("gallery", str(folder), "--thumb-size", "16", "--samples-per-page", "1") == 0
    second = parse((folder / "gallery" / "page_002.html").read_text())
    _check_groups(second.find("section", "sample"), 1, 3)
    # One image per prompt: one card per image as always, no groups.
    flat = _folder(tmp_path, k=1)
    assert run_cli("gallery", str(flat), "--thumb-size", "16") == 0
    page = parse((flat / "index.html").read_text())
    assert not page.find_all(cls="prompt-group") and len(page.find_all("figure", "card")) == 10
    assert all(card.find(cls="prompt") and not card.find(cls="k") for card in page.find_all("figure", "card"))


def test_a_grid_sheet_has_one_row_per_prompt_with_its_k_images(tmp_path):
    folder = _folder(tmp_path, k=3)
    _fail(folder, 0, 4, 2)
    thumb, pad = 32, 6
    assert run_cli("grid", str(folder), "--thumb-size", str(thumb), "--overview-thumb-size", "16") == 0
    sheet = Image.open(folder / "grids" / "sample_000.png").convert("RGB")
    label = max(9, thumb // 16) + 8
    title = max(14, thumb // 9) + 8
    row = label + thumb + label  # the prompt's label band, its tiles, their k labels
    assert sheet.size == (pad + 3 * (thumb + pad), title + 5 * row + pad)  # 5 rows of 3 tiles
    for prompt_id in range(5):
        for k in range(3):
            x = pad + k * (thumb + pad) + thumb // 2
            y = title + prompt_id * row + label + thumb // 2
            expected = (60, 20, 20) if (prompt_id, k) == (4, 2) else _colour(prompt_id, k)
            assert sheet.getpixel((x, y)) == expected, (prompt_id, k)
    # The overview page shows each sample's rows the same way, at its own size.
    overview = Image.open(folder / "grids" / "overview_001.png")
    small_row = 2 * (max(9, 16 // 16) + 8) + 16
    assert overview.size == (pad + 3 * (16 + pad), 2 * ((max(14, 16 // 9) + 8) + 5 * small_row + pad))
    # One image per prompt: the sheet is as it always was, 5 tiles in one line.
    flat = _folder(tmp_path, k=1)
    assert run_cli("grid", str(flat), "--thumb-size", str(thumb)) == 0
    sheet = Image.open(flat / "grids" / "sample_000.png").convert("RGB")
    assert sheet.size == (pad + 5 * (thumb + pad), title + thumb + label + pad)
    assert [sheet.getpixel((pad + p * (thumb + pad) + thumb // 2, title + thumb // 2)) for p in range(5)] == \
        [_colour(p, 0) for p in range(5)]


def test_reports_leave_out_an_entry_with_a_bad_image_index(tmp_path, caplog):
    folder = _folder(tmp_path, k=2, samples=1)
    log = read_json(folder / "image_generation_log.json")
    log["generated_images"][1]["image_index"] = "1"
    (folder / "image_generation_log.json").write_text(json.dumps(log))
    assert run_cli("gallery", str(folder), "--thumb-size", "16") == 0
    assert "generated_images[1].image_index" in caplog.text
    assert len(parse((folder / "index.html").read_text()).find_all("figure", "card")) == 9


@pytest.mark.browser
def test_a_k_images_run_in_the_gallery_in_a_real_browser(ten_prompts, tiny_model, workdir, tmp_path):
    chromium = chromium_path()
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--samples", "1", "--quiet",
                   "--images-per-prompt", "2") == 0
    folder = workdir / "images"
    assert run_cli("gallery", str(folder)) == 0
    url = (folder / "index.html").as_uri()
    page = parse(dump_dom(chromium, url, tmp_path))
    assert page.find("body").attrs["data-mode"] == "all"  # the script ran
    groups = page.find_all("div", "prompt-group")
    entries = _entries(workdir)
    assert len(groups) == 5
    for group in groups:
        mine = [e for e in entries if e["prompt_id"] == int(group.attrs["data-prompt"])]
        assert group.find(cls="prompt-head").find(cls="prompt").text == mine[0]["visual_prompt"]
        assert [c.find(cls="seed").text for c in group.find_all("figure", "card")] == \
            [f"seed {e['seed']}" for e in mine]
        assert [img.attrs["src"] for img in group.find_all("img")] == \
            [f"thumbs/256/{Path(e['image_path']).stem}.jpg" for e in mine]
    filtered = parse(dump_dom(chromium, url + "#mode=divergent", tmp_path))
    shown = [g for g in filtered.find_all("div", "group") if "hidden" not in g.attrs]
    assert [g.attrs["data-mode"] for g in shown] == ["divergent"]
    assert len(shown[0].find_all("div", "prompt-group")) == 2
    shot = tmp_path / "gallery.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1280,1100",
                    "--virtual-time-budget=3000", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert len(set(Image.open(shot).convert("RGB").resize((64, 64)).getdata())) > 50
