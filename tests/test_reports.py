"""Reports and reading images back, from files anyone may have edited (issue 12: items 2, 3, 4, 10, 11, 12, 14, 17).

The output folders here are built without a model by benchmarks/report_scale.py (real PNGs with their text, written
by music2image's own encoder, and a log and summary in the formats `generate` writes), so each test takes seconds.
"""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import CHROMIUM_FLAGS, chromium_path, REPO, read_json, run_cli, run_subprocess
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from music2image.outputs import encode_image
from music2image.safe_paths import UnsafePathError, write_bytes_inside

sys.path.insert(0, str(REPO / "benchmarks"))
from report_scale import build_folder  # noqa: E402

LOG = "image_generation_log.json"
SUMMARY = "image_generation_summary.json"


@pytest.fixture
def folder(workdir):
    return build_folder(workdir / "images", samples=3, per_sample=5, size=16)


def _edit_log(folder, change):
    log = read_json(folder / LOG)
    change(log)
    (folder / LOG).write_text(json.dumps(log))


def _recipe_text(**changes) -> dict:
    recipe = {"sample_idx": 0, "prompt_id": 0, "mode": "convergent", "temperature": 0.4, "prompt": "a lake",
              "seed": 7, "device": "cpu",
              "recipe": {"model": "/nonexistent/model", "width": 64, "height": 64, "steps": 2, "scheduler": "euler",
                         "guidance_scale": 5.0, "seed": 0, "dtype": "float32"}}
    recipe.update(changes)
    return {"parameters": "a lake\nSteps: 2, Seed: 7", "music2image": json.dumps(recipe)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(text: dict | None = None) -> bytes:
    """A 30000x30000 PNG in a few hundred bytes: its header says so, its image data is one short chunk."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    chunks = [_chunk(b"tEXt", key.encode() + b"\0" + value.encode()) for key, value in (text or {}).items()]
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(chunks) + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) + \
        _chunk(b"IEND", b"")


def _png_with_text(key: str, value: str, compressed: bool) -> bytes:
    import io

    info = PngInfo()
    if compressed:
        info.add_text(key, value, zip=True)  # zTXt: 20 MB of text in ~20 KB of file
    else:
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


# Item 10: one bad image never stops a report ------------------------------------------------------------------
def test_grid_and_gallery_skip_truncated_bomb_and_huge_text_images(folder, capsys):
    images = sorted(folder.rglob("sample_*_prompt_*.png"))
    whole = images[0].read_bytes()
    images[0].write_bytes(whole[: len(whole) // 2])  # truncated
    images[1].write_bytes(_bomb_png())
    images[2].write_bytes(_png_with_text("parameters", "x" * 20_000_000, compressed=True))
    images[5].write_bytes(_png_with_text("parameters", "y" * 20_000_000, compressed=False))
    assert run_cli("grid", str(folder), "--thumb-size", "32") == 0
    captured = capsys.readouterr()
    assert "grid: 3 images skipped, shown as unreadable" in captured.err  # the 20 MB texts do not stop a tile
    assert "30000x30000" in captured.err or "pixels" in captured.err
    assert sorted(p.name for p in (folder / "grids").iterdir()) == \
        ["overview_001.png", "sample_000.png", "sample_001.png", "sample_002.png"]

    assert run_cli("gallery", str(folder), "--thumb-size", "32") == 0
    captured = capsys.readouterr()
    assert "gallery: 4 images skipped, shown as unreadable" in captured.err
    page = (folder / "index.html").read_text()
    assert page.count('class="card unreadable"') == 4 and page.count('class="card ok"') == 11
    assert "4 images on this page could not be read" in page
    assert "more than the 1,048,576" in page  # the uncompressed 20 MB text: over our bound
    assert "Decompressed data too large" in page  # the compressed one: Pillow's own bound
    assert len(page) < 200_000  # no 20 MB of text copied into the page


# Item 11: show and regenerate on crafted PNGs -------------------------------------------------------------------
def test_show_reads_the_text_of_a_decompression_bomb_without_decoding_it(workdir, capsys):
    (workdir / "bomb.png").write_bytes(_bomb_png(_recipe_text()))
    assert run_cli("show", "bomb.png", "--json") == 0
    assert json.loads(capsys.readouterr().out)["prompt"] == "a lake"


@pytest.mark.parametrize("content, message", [
    (lambda: _png_with_text("music2image", "z" * 20_000_000, compressed=False), "more than the 1,048,576"),
    (lambda: _png_with_text("music2image", "z" * 20_000_000, compressed=True), "Decompressed data too large"),
    (lambda: Image.new("RGB", (8, 8)).tobytes()[:40], "cannot read the image"),
])
def test_show_and_regenerate_refuse_oversized_or_broken_files_with_one_message(workdir, capsys, content, message):
    (workdir / "bad.png").write_bytes(content())
    for command in ("show", "regenerate"):
        assert run_cli(command, "bad.png") == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("changes, problems", [
    ({"prompt": None}, ["prompt: input should be a valid string, got null"]),
    ({"seed": "abc"}, ['seed: input should be a valid integer, got "abc"']),
    ({"sample_idx": "1", "recipe": {"model": 3, "width": "64", "height": 64, "steps": 2, "scheduler": "euler",
                                    "guidance_scale": 5.0, "dtype": "float32"}},
     ['sample_idx: input should be a valid integer, got "1"', "recipe.model: input should be a valid string, got 3",
      'recipe.width: input should be a valid integer, got "64"', "recipe.seed: field required"]),
])
def test_regenerate_validates_the_whole_recipe_before_loading_a_model(workdir, capsys, changes, problems):
    text = _recipe_text(**changes)
    if changes.get("prompt", "") is None:  # the key missing altogether
        document = json.loads(text["music2image"])
        del document["prompt"]
        text["music2image"] = json.dumps(document)
        problems = ["prompt: field required"]
    (workdir / "crafted.png").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), "png", text))
    assert run_cli("regenerate", "crafted.png") == 2
    err = capsys.readouterr().err
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    assert f"crafted.png: its music2image recipe cannot be used ({count}):" in err
    for problem in problems:
        assert problem in err
    assert "/nonexistent/model" not in err  # stopped before looking for the model
    assert not (workdir / "crafted.regenerated.png").exists()


# Item 4: what `show` prints to a terminal, and a reader that goes away -------------------------------------------
def test_show_escapes_terminal_control_characters(workdir, capsys):
    hostile = "a lake\x1b]0;owned title\x07 \x1b[31mred\x1b[0m \x9b2J \u202eevil"
    text = _recipe_text(prompt=hostile)
    text["parameters"] = hostile + "\nSteps: 2"
    (workdir / "escapes.png").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), "png", text))
    for flags in ([], ["--json"]):
        assert run_cli("show", "escapes.png", *flags) == 0
        out = capsys.readouterr().out
        assert not any(char in out for char in "\x1b\x07\x9b\u202e")
        assert "\\u001b]0;owned title\\u0007" in out and "\\u009b2J" in out and "\\u202eevil" in out
    assert json.loads(out)["prompt"] == hostile  # --json is still JSON, with the same text


@pytest.mark.parametrize("command", ["show", "summary"])
def test_a_closed_pipe_ends_without_a_traceback(folder, workdir, command):
    target = str(next(folder.rglob("*.png"))) if command == "show" else str(folder)
    process = subprocess.Popen([sys.executable, "-m", "music2image", command, target], cwd=workdir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    process.stdout.close()  # like `| head` that has read enough, before anything is written
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""


# Item 12: wrong types in the log or summary ---------------------------------------------------------------------
def test_reports_skip_log_entries_with_wrong_types_with_one_warning(folder, capsys):
    def spoil(log):
        log["generated_images"][0]["sample_idx"] = "0"
        log["generated_images"][1]["seed"] = "abc"
        log["generated_images"][2]["status"] = ["success"]
        log["skipped_samples"] = [{"sample_idx": "x", "reason": 1}]
    _edit_log(folder, spoil)
    summary = read_json(folder / SUMMARY)
    summary["by_sample"]["abc"] = {"convergent": 1}
    summary["by_sample"]["1"] = {"convergent": "3"}
    summary["failures"] = [{"sample_idx": 0, "prompt_id": "x", "error": "boom"}]
    (folder / SUMMARY).write_text(json.dumps(summary))

    assert run_cli("grid", str(folder), "--thumb-size", "32") == 0
    err = capsys.readouterr().err
    assert err.count("3 of 15 generated_images entries are not valid and are left out") == 1
    assert 'generated_images[0].sample_idx: input should be a valid integer, got "0"' in err
    assert run_cli("gallery", str(folder), "--thumb-size", "32") == 0
    captured = capsys.readouterr()
    assert "3 of 15 generated_images entries are not valid" in captured.err
    assert "3 entries of the log are not valid and are not shown" in (folder / "index.html").read_text()
    assert run_cli("summary", str(folder)) == 0
    captured = capsys.readouterr()
    assert "2 of 4 by_sample entries are not valid" in captured.err and "1 of 1 failures entries" in captured.err
    assert "\n  0 " in captured.out and "\n  2 " in captured.out


def test_summary_with_wrong_totals_is_one_message(folder, capsys):
    summary = read_json(folder / SUMMARY)
    summary["total_images_generated"] = "15"
    (folder / SUMMARY).write_text(json.dumps(summary))
    assert run_cli("summary", str(folder)) == 2
    assert 'total_images_generated: input should be a valid integer, got "15"' in capsys.readouterr().err


# Item 14: pages that do not grow with the run ---------------------------------------------------------------------
def test_gallery_and_grid_are_paged(workdir, capsys):
    folder = build_folder(workdir / "images", samples=7, per_sample=2, size=16)
    assert run_cli("gallery", str(folder), "--thumb-size", "16", "--samples-per-page", "3") == 0
    assert run_cli("grid", str(folder), "--thumb-size", "16", "--overview-thumb-size", "16",
                   "--samples-per-page", "3") == 0
    assert "7 contact sheets and 3 overview pages" in capsys.readouterr().out
    pages = [folder / "index.html", folder / "gallery" / "page_002.html", folder / "gallery" / "page_003.html"]
    assert sorted((folder / "gallery").iterdir()) == pages[1:]
    sections = [page.read_text().count('<section class="sample"') for page in pages]
    assert sections == [3, 3, 1]
    second = pages[1].read_text()
    assert 'href="../index.html"' in second and 'href="../gallery/page_003.html" rel="next"' in second
    assert 'src="../thumbs/16/sample_003_prompt_00.jpg"' in second
    assert "page 2 of 3 · samples 3–5" in second
    heights = [Image.open(folder / "grids" / f"overview_00{n}.png").height for n in (1, 2, 3)]
    assert heights[0] == heights[1] > heights[2]
    # A shorter log later: the pages it no longer fills are removed, not left to show old samples.
    assert run_cli("gallery", str(folder), "--thumb-size", "16", "--samples-per-page", "5") == 0
    assert sorted((folder / "gallery").iterdir()) == [pages[1]]


@pytest.mark.slow
def test_the_report_scale_benchmark_shows_pages_and_images_do_not_grow(workdir):
    records = []
    for samples in (50, 100):
        out = run_subprocess([str(REPO / "benchmarks" / "report_scale.py"), "--samples", str(samples),
                              "--per-sample", "2", "--size", "16"], cwd=workdir, timeout=600)
        assert out.returncode == 0, out.stderr
        records.append(json.loads(out.stdout.strip().splitlines()[-1]))
    small, large = records
    assert (small["gallery_pages"], large["gallery_pages"]) == (1, 2)
    assert small["largest_image"] == large["largest_image"]
    assert abs(large["largest_page_bytes"] - small["largest_page_bytes"]) < 0.05 * small["largest_page_bytes"]


# Item 17: the gallery finds the prompts file from anywhere ----------------------------------------------------------
def test_gallery_finds_the_prompts_file_from_any_working_directory(workdir, monkeypatch):
    run_dir = workdir / "project"
    folder = build_folder(run_dir / "out" / "run1", samples=2, per_sample=2, size=16)
    # As `generate --prompts-file p.json --output-dir out/run1` records them, from run_dir.
    _edit_log(folder, lambda log: log["metadata"].update(prompts_file="p.json"))
    summary = read_json(folder / SUMMARY)
    summary["output_directory"] = "out/run1"
    (folder / SUMMARY).write_text(json.dumps(summary))
    samples = [{"sample_idx": i, "source": f"song{i}.wav", "musical_features": {"tempo": 120.0}, "prompts": []}
               for i in range(2)]
    (run_dir / "p.json").write_text(json.dumps({"samples": samples}))
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_cli("gallery", str(folder)) == 0
    page = (folder / "index.html").read_text()
    assert "song0.wav · 120 BPM" in page and "song1.wav · 120 BPM" in page


# Item 2: nothing written through a planted link -------------------------------------------------------------------
@pytest.mark.parametrize("command, planted", [
    ("gallery", "thumbs"), ("gallery", "thumbs/256"), ("gallery", "gallery"), ("grid", "grids"),
])
def test_reports_refuse_to_write_through_a_linked_folder(folder, workdir, capsys, command, planted):
    outside = workdir / "outside"
    outside.mkdir()
    (folder / planted).parent.mkdir(parents=True, exist_ok=True)
    (folder / planted).symlink_to(outside, target_is_directory=True)
    pages = ["--samples-per-page", "1"] if planted == "gallery" else []  # gallery/ holds the pages after the first
    assert run_cli(command, str(folder), *pages) == 2
    err = capsys.readouterr().err
    assert f"{folder / planted} is a symbolic link (to {outside})" in err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("command, planted", [
    ("gallery", "index.html"), ("gallery", "thumbs/256/sample_001_prompt_02.jpg"), ("grid", "grids/sample_001.png"),
    ("grid", "grids/overview_001.png"),
])
def test_reports_refuse_to_write_through_a_linked_file(folder, workdir, capsys, command, planted):
    precious = workdir / "precious.txt"
    precious.write_text("keep me")
    (folder / planted).parent.mkdir(parents=True, exist_ok=True)
    (folder / planted).symlink_to(precious)
    assert run_cli(command, str(folder)) == 2
    assert f"{folder / planted} is a symbolic link (to {precious})" in capsys.readouterr().err
    assert precious.read_text() == "keep me"


def test_write_bytes_inside_never_follows_a_link(workdir):
    root, outside = workdir / "root", workdir / "outside"
    root.mkdir(), outside.mkdir()
    (root / "a").mkdir()
    (root / "a" / "b").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        write_bytes_inside(root, "a/b/c.txt", b"x")
    for bad in ("../x", "/etc/x", ""):
        with pytest.raises(UnsafePathError, match="not a path inside"):
            write_bytes_inside(root, bad, b"x")
    assert write_bytes_inside(root, "a/new/c.txt", b"x").read_bytes() == b"x"
    assert list(outside.iterdir()) == []


# Item 3: a hostile log runs nothing in a real browser ----------------------------------------------------------------
# Each payload builds its marker at run time ("PW" + "NED-…"), so the marker is in the page only if the code ran.
def _payload(field: str) -> str:
    return (f'"><img src=x onerror="document.title=\'PW\'+\'NED-{field}\'">'
            f"<script>document.title='PW'+'NED-{field}'</script>")


def _browser(chromium, url, profile):
    out = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                          "--v=0", "--virtual-time-budget=3000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


@pytest.mark.browser
@pytest.mark.parametrize("field", ["sample_idx", "prompt_id", "seed", "mode", "visual_prompt"])
def test_a_hostile_log_runs_nothing_in_the_gallery(folder, tmp_path, capsys, field):
    chromium = chromium_path()

    def spoil(log):
        hostile = log["generated_images"][0]
        hostile.update({"sample_idx": 99, field: _payload(field)})  # a sample of its own
        if field == "visual_prompt":  # the other text fields, at the same time
            log["generated_images"][1].update(status="failed", image_path=None, error=_payload("error"))
            log["skipped_samples"] = [{"sample_idx": 9, "reason": _payload("reason")}]
            log["metadata"]["model"] = _payload("model")
    _edit_log(folder, spoil)
    assert run_cli("gallery", str(folder)) == 0
    dom, console = _browser(chromium, (folder / "index.html").as_uri(), tmp_path / "profile")
    assert "PWNED" not in dom
    assert 'data-mode="all"' in dom  # our own script ran
    assert "Content Security Policy" not in console  # and nothing of ours (script, style, thumbnails) was refused
    wrong_type = field in ("sample_idx", "prompt_id", "seed")
    assert ("1 of 15 generated_images entries are not valid" in capsys.readouterr().err) == wrong_type
    if not wrong_type:
        shown = ["mode", "visual_prompt", "error", "reason", "model"] if field == "visual_prompt" else [field]
        assert all(f"NED-{name}" in dom for name in shown)  # shown, as text


@pytest.mark.browser
def test_the_gallery_policy_runs_no_inline_script_but_its_own(folder, tmp_path):
    """Should an escape ever be missed, the Content-Security-Policy still stops inline script that is not ours."""
    chromium = chromium_path()
    assert run_cli("gallery", str(folder)) == 0
    page = (folder / "index.html").read_text()
    injected = page.replace("</main>", "<script>document.title='PW'+'NED-inline'</script></main>")
    (folder / "index.html").write_text(injected)
    dom, console = _browser(chromium, (folder / "index.html").as_uri(), tmp_path / "profile")
    assert "PWNED" not in dom and "violates the following Content Security Policy directive" in console
    assert 'data-mode="all"' in dom


def test_the_readme_report_commands_work_as_written(workdir, capsys):
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Looking at the results\n\n```\n(.*?)```", readme, re.S).group(1)
    commands = [shlex.split(line.split("#")[0]) for line in block.strip().splitlines()]
    assert [c[1] for c in commands] == ["gallery", "grid", "summary"] and {c[0] for c in commands} == {"music2image"}
    build_folder(workdir / "images", samples=2, per_sample=5, size=16)
    for command in commands:
        assert run_cli(*command[1:]) == 0
    assert (workdir / "images" / "index.html").is_file()
    assert (workdir / "images" / "grids" / "overview_001.png").is_file()
    assert (workdir / "images" / "grids" / "sample_000.png").is_file()
    assert "success rate 100.0%: 10 of 10 images" in capsys.readouterr().out


def test_a_folder_made_with_no_save_is_one_message_for_grid_gallery_and_evaluate(workdir, tiny_model, capsys):
    """--no-save makes images and writes no file: grid and gallery drew sheets and pages of "missing" tiles (exit 0),
    and evaluate said "image_path must be a path inside the output folder, got None" (from the newcomer run)."""
    from conftest import SMALL, model_flags, prompts_doc

    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=2)))
    made = ["generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL, "--output-dir", "out"]
    assert run_cli(*made, "--no-save", "--quiet") == 0
    capsys.readouterr()
    for command in (["grid", "out"], ["gallery", "out"], ["evaluate", "out", "--clip-model", "tiny"]):
        assert run_cli(*command) == 2, command
        err = capsys.readouterr().err
        assert "2 images were made with --no-save" in err and "got None" not in err, err
    assert sorted(p.name for p in (workdir / "out").iterdir()) == [
        "generate_images.log", "generation_journal.jsonl", "image_generation_log.json",
        "image_generation_summary.json"]  # nothing drawn, nothing written
    assert run_cli(*made, "--limit", "1", "--quiet") == 0  # one image with a file: the others are drawn as missing
    assert run_cli("grid", "out") == 0 and run_cli("gallery", "out") == 0


def test_a_sheet_s_title_names_the_sample_s_music_and_fits_the_sheet(workdir, tiny_model, monkeypatch):
    """The grid's titles said "sample 0" without the audio file the gallery names (from the newcomer run); a title
    longer than its sheet is cut with an ellipsis."""
    from conftest import SMALL, model_flags, prompts_doc

    from music2image.report import grids

    doc = prompts_doc(samples=2, per_sample=2)
    doc["samples"][0].update(source="song.wav", musical_features={"key": "A", "tonality": "minor", "tempo": 80.2})
    doc["samples"][1].update(source="a" * 400 + ".wav")
    (workdir / "p.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *SMALL, "--output-dir", "out",
                   "--quiet") == 0
    titles, real = [], grids._titled_sheet

    def recording(width, height, title, title_height):
        titles.append((title, width, title_height))
        return real(width, height, title, title_height)

    monkeypatch.setattr(grids, "_titled_sheet", recording)
    assert run_cli("grid", "out") == 0
    assert "sample 0 · song.wav · A minor · 80 BPM" in [title for title, _, _ in titles]
    title, width, title_height = next(t for t in titles if t[0].startswith("sample 1 · aaa"))
    font = grids._font(title_height - 8)
    assert font.getlength(title) > width and font.getlength(grids._fit(title, font, width - 12)) <= width - 12
