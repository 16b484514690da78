"""JSON that is valid and still hostile, in any file we read back (music2image/untrusted_json.py).

- Nested deeper than Python's parser follows ("[[[[…" 100,000 deep): json.loads raises RecursionError, not
  ValueError, and the readers caught ValueError only: gallery, grid and evaluate on such a log, generate on such a
  journal line and show on such a PNG printed a traceback.
- A lone surrogate escaped ("\\ud800"): json.loads makes a str with no UTF-8, and writing it (the gallery's HTML,
  evaluate's cache keys, generate's log) raised UnicodeEncodeError, a traceback."""

import hashlib
import json
import shutil

import pytest
from conftest import model_flags, prompts_doc, run_cli
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from music2image.journal import JOURNAL_NAME
from music2image.outputs import LOG_NAME, SUMMARY_NAME

DEEP = "[" * 100_000


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("deep")
    (root / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=2)))
    args = ["generate", "--prompts-file", str(root / "p.json"), *model_flags(tiny_model), "--width", "64",
            "--height", "64", "--steps", "1", "--quiet"]
    assert run_cli(*args, "--output-dir", str(root / "images")) == 0
    return root / "images", args


@pytest.fixture
def folder(finished, tmp_path):
    images, args = finished
    shutil.copytree(images, tmp_path / "images")
    return tmp_path / "images", [*args, "--output-dir", str(tmp_path / "images")]


@pytest.mark.parametrize("command", ["gallery", "grid", "evaluate"])
def test_a_log_nested_too_deeply_is_one_message(command, folder, capsys):
    images, _ = folder
    (images / LOG_NAME).write_text(DEEP)
    assert run_cli(command, str(images)) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err


def test_a_journal_line_nested_too_deeply_is_passed_over_as_a_garbled_one(folder, caplog):
    images, args = folder
    with open(images / JOURNAL_NAME, "a") as journal:
        journal.write(DEEP + "\n")
    assert run_cli(*args) == 0
    assert "2 already done, 0 to generate" in caplog.text


def test_a_summary_nested_too_deeply_is_one_message_and_the_gallery_goes_on(folder, capsys):
    images, _ = folder
    (images / SUMMARY_NAME).write_text(DEEP)  # the gallery reads it to find the run's prompts file
    assert run_cli("gallery", str(images)) == 0
    assert run_cli("summary", str(images)) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err


def test_a_png_recipe_nested_too_deeply_is_one_message(workdir, capsys):
    info = PngInfo()
    info.add_text("music2image", DEEP)
    Image.new("RGB", (8, 8)).save(workdir / "deep.png", pnginfo=info)
    for command in ("show", "regenerate"):
        assert run_cli(command, "deep.png") == 2, command
        err = capsys.readouterr().err
        assert "its music2image recipe is not JSON (nested too deeply to read)" in err and "Traceback" not in err


def test_a_cache_or_lock_file_nested_too_deeply_is_read_as_none(workdir, monkeypatch):
    from music2image.music.llm_cache import AnswerCache
    from music2image.outputs.files import LOCK_NAME, OutputLock
    from music2image.single_file import checkpoint_sha256, hash_cache_path

    cache = AnswerCache(workdir / "llm")  # an LLM answer: asked again
    key = "ab" * 32
    cache._path(key).parent.mkdir(parents=True)
    cache._path(key).write_text(DEEP)
    assert cache.get(key) is None

    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir / "xdg"))  # the checkpoint hash cache: hashed again
    hash_cache_path().parent.mkdir(parents=True)
    hash_cache_path().write_text(DEEP)
    (workdir / "model.safetensors").write_bytes(b"one")
    assert checkpoint_sha256(workdir / "model.safetensors") == hashlib.sha256(b"one").hexdigest()

    held = OutputLock(workdir).acquire()  # the lock's holder: "another process"
    try:
        (workdir / LOCK_NAME).write_text(DEEP)
        with pytest.raises(Exception, match="another music2image run is writing here: another process"):
            OutputLock(workdir).acquire()
    finally:
        held.release()


def test_an_evaluation_nested_too_deeply_is_no_headline(folder, capsys):
    from music2image.evaluation.documents import EVALUATION_DIR, EVALUATION_JSON

    images, _ = folder
    (images / EVALUATION_DIR).mkdir()
    (images / EVALUATION_DIR / EVALUATION_JSON).write_text(DEEP)  # `summary` reads its headline
    assert run_cli("summary", str(images)) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_lone_surrogate_in_the_log_is_shown_as_a_replacement_character(folder, capsys):
    images, _ = folder
    log = json.loads((images / LOG_NAME).read_text())
    log["generated_images"][0]["visual_prompt"] = "red \ud800 sky"
    (images / LOG_NAME).write_text(json.dumps(log))  # ensure_ascii: written as the escape "\\ud800"
    assert run_cli("gallery", str(images)) == 0
    assert "red \ufffd sky" in (images / "index.html").read_text(encoding="utf-8")
    assert run_cli("evaluate", str(images), "--clip-model", "tiny") == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_lone_surrogate_in_a_journal_record_is_no_traceback(folder, capsys):
    images, args = folder
    record = next(r for r in map(json.loads, (images / JOURNAL_NAME).read_text().splitlines())
                  if r.get("type") == "image")
    with open(images / JOURNAL_NAME, "a") as journal:
        journal.write(json.dumps({**record, "visual_prompt": "red \udc00 sky"}) + "\n")
    assert run_cli(*args) == 2  # a finished image whose prompt changed: refused, and the message is printable
    assert 'sample 0 prompt 0: "red \ufffd sky" there' in capsys.readouterr().err
    assert run_cli(*args, "--replace-changed") == 0
    assert "Traceback" not in capsys.readouterr().err
