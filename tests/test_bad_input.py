"""The bad-input zoo: every malformed prompts file or flag → one clear message, exit 2, nothing written."""

import json
import sys
from pathlib import Path

import pytest
from conftest import SMALL, prompts_doc, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from music2image.errors import PromptFileError
from music2image.prompts import parse_prompts_json, validate_prompts


def _doc_with(change) -> bytes:
    doc = prompts_doc(samples=2)
    change(doc)
    return json.dumps(doc).encode()


def _set(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


_DELETE = object()
P0 = ("samples", 0, "prompts", 0)

FILE_CASES = {
    "empty file": (b"", "not valid JSON"),
    "truncated": (b'{"samples": [', "not valid JSON"),
    "top-level list": (b"[]", "must be an object"),
    "top-level string": (b'"hello"', "must be an object"),
    "no samples": (b"{}", "samples: is required"),
    "samples not a list": (b'{"samples": {}}', "samples: must be a list"),
    "sample not an object": (b'{"samples": [1]}', "samples[0]: must be an object"),
    "sample_idx missing": (_doc_with(_set(("samples", 0, "sample_idx"), _DELETE)), "samples[0].sample_idx: is required"),
    "sample_idx string": (_doc_with(_set(("samples", 0, "sample_idx"), "0")), 'samples[0].sample_idx: must be an integer from 0 to 999999, got "0"'),
    "sample_idx float": (_doc_with(_set(("samples", 0, "sample_idx"), 1.0)), "samples[0].sample_idx: must be an integer"),
    "sample_idx bool": (_doc_with(_set(("samples", 0, "sample_idx"), True)), "got true"),
    "sample_idx negative": (_doc_with(_set(("samples", 0, "sample_idx"), -1)), "got -1"),
    "sample_idx huge": (_doc_with(_set(("samples", 0, "sample_idx"), 10**6)), "got 1000000"),
    "prompt_id missing": (_doc_with(_set(P0 + ("prompt_id",), _DELETE)), "samples[0].prompts[0].prompt_id: is required"),
    "prompt_id string": (_doc_with(_set(P0 + ("prompt_id",), "a")), "samples[0].prompts[0].prompt_id: must be an integer"),
    "prompt_id huge": (_doc_with(_set(P0 + ("prompt_id",), 2**70)), "samples[0].prompts[0].prompt_id: must be an integer"),
    "visual_prompt empty": (_doc_with(_set(P0 + ("visual_prompt",), "")), 'samples[0].prompts[0].visual_prompt: must be a non-empty string, got ""'),
    "visual_prompt blank": (_doc_with(_set(P0 + ("visual_prompt",), "   \n")), "must be a non-empty string"),
    "visual_prompt number": (_doc_with(_set(P0 + ("visual_prompt",), 5)), "must be a non-empty string, got 5"),
    "visual_prompt null": (_doc_with(_set(P0 + ("visual_prompt",), None)), "got null"),
    "visual_prompt missing": (_doc_with(_set(P0 + ("visual_prompt",), _DELETE)), "visual_prompt: is required"),
    "visual_prompt 10 MB": (_doc_with(_set(P0 + ("visual_prompt",), "x" * 10_000_000)), "the limit is 20000"),
    "visual_prompt control chars": (_doc_with(_set(P0 + ("visual_prompt",), "red\x00sky\x1b[2J")), "contains control characters"),
    # JSON's "\ud800" alone is half a UTF-16 pair: it crashed planning (no UTF-8 for the recipe key) with a traceback.
    "visual_prompt lone surrogate": (_doc_with(_set(P0 + ("visual_prompt",), "sea \ud800 x")), "half of a UTF-16 surrogate pair"),
    "mode lone surrogate": (_doc_with(_set(P0 + ("mode",), "conv\udfff")), "mode: must be a short label"),
    "mode missing": (_doc_with(_set(P0 + ("mode",), _DELETE)), "samples[0].prompts[0].mode: is required"),
    "mode empty": (_doc_with(_set(P0 + ("mode",), "")), "mode: must be a non-empty string"),
    "mode path-like": (_doc_with(_set(P0 + ("mode",), "../../etc/passwd")), "no slashes"),
    "mode control chars": (_doc_with(_set(P0 + ("mode",), "conv\x1b[31m")), "mode: must be a short label"),
    "temperature string": (_doc_with(_set(P0 + ("temperature",), "hot")), 'temperature: must be a finite number or null, got "hot"'),
    "temperature NaN literal": (b'{"samples": [{"sample_idx": 0, "prompts": [{"prompt_id": 0, "mode": "c", "temperature": NaN, "visual_prompt": "x"}]}]}', "NaN is not valid JSON"),
    "temperature Infinity literal": (b'{"samples": [{"sample_idx": 0, "prompts": [{"prompt_id": 0, "mode": "c", "temperature": -Infinity, "visual_prompt": "x"}]}]}', "-Infinity is not valid JSON"),
    "temperature overflow": (b'{"samples": [{"sample_idx": 0, "prompts": [{"prompt_id": 0, "mode": "c", "temperature": 1e400, "visual_prompt": "x"}]}]}', "must be a finite number"),
    "duplicate ids": (_doc_with(_set(("samples", 0, "prompts", 1, "prompt_id"), 0)), "duplicate (sample_idx, prompt_id) = (0, 0), first at samples[0].prompts[0]"),
    "duplicate ids across samples": (_doc_with(_set(("samples", 1, "sample_idx"), 0)), "duplicate (sample_idx, prompt_id) = (0, 0)"),
    "duplicate key": (b'{"samples": [], "samples": []}', 'duplicate key "samples"'),
    "not UTF-8": (b'{"samples": [{"sample_idx": 0, "prompts": [{"prompt_id": 0, "mode": "c", "visual_prompt": "caf\xe9"}]}]}', "not UTF-8 text: invalid byte 0xe9"),
    "BOM": (b"\xef\xbb\xbf" + json.dumps(prompts_doc(1)).encode(), "byte-order mark"),
    "prompts not a list": (_doc_with(_set(("samples", 0, "prompts"), "a prompt")), "samples[0].prompts: must be a list"),
    "prompt not an object": (_doc_with(_set(("samples", 0, "prompts", 0), ["x"])), "samples[0].prompts[0]: must be an object"),
    "nested too deeply": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "binary garbage": (bytes(range(256)), "not UTF-8 text"),
}


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_bad_prompts_file(name, workdir, tiny_model, capsys):
    data, expected = FILE_CASES[name]
    (workdir / "bad.json").write_bytes(data)
    before = sorted(workdir.iterdir())
    assert run_cli("generate", "--prompts-file", "bad.json", "--model", str(tiny_model / "base"), *SMALL) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err and err.startswith("music2image: error: bad.json: ")
    assert sorted(workdir.iterdir()) == before  # no output directory, nothing else


def test_every_problem_is_listed_at_once(workdir, capsys):
    doc = prompts_doc(samples=4)
    doc["samples"][0]["sample_idx"] = "zero"
    doc["samples"][3]["prompts"][1]["visual_prompt"] = ""
    doc["samples"][2]["prompts"][4]["temperature"] = "warm"
    doc["samples"][1]["prompts"][2]["prompt_id"] = 0
    (workdir / "bad.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "bad.json") == 2
    err = capsys.readouterr().err
    assert "bad.json: 4 problems" in err
    for line in ['samples[0].sample_idx: must be an integer from 0 to 999999, got "zero"',
                 'samples[3].prompts[1].visual_prompt: must be a non-empty string, got ""',
                 'samples[2].prompts[4].temperature: must be a finite number or null, got "warm"',
                 "samples[1].prompts[2]: duplicate (sample_idx, prompt_id) = (1, 0), first at samples[1].prompts[0]"]:
        assert line in err
    assert not (workdir / "images").exists()


def test_missing_prompts_file_says_how_to_create_it(workdir, capsys):
    assert run_cli("generate") == 2
    err = capsys.readouterr().err
    assert "generated_prompts/visual_prompts_complete.json: 1 problem" in err and "file not found" in err
    assert "music2image prompts" in err
    assert list(workdir.iterdir()) == []


def test_prompts_file_is_a_directory(workdir, capsys):
    (workdir / "dir.json").mkdir()
    assert run_cli("generate", "--prompts-file", "dir.json") == 2
    assert "is a directory" in capsys.readouterr().err


def test_unknown_keys_and_unusual_modes_are_fine(workdir, tiny_model):
    doc = prompts_doc(samples=1, per_sample=2)
    doc["extra"] = {"anything": [1, 2]}
    doc["samples"][0]["new_field"] = None
    doc["samples"][0]["prompts"][0].update(mode="wild card", temperature=None, note="x")
    del doc["samples"][0]["prompts"][1]["temperature"]
    (workdir / "ok.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "ok.json", "--model", str(tiny_model / "base"), *SMALL) == 0
    summary = json.loads((workdir / "images" / "image_generation_summary.json").read_text())
    assert summary["by_mode"] == {"wild card": 1, "convergent": 1}


FLAG_CASES = {
    "width not multiple of 8": (["--width", "770"], "--width 770: must be a multiple of 8"),
    "height too small": (["--height", "32"], "--height 32: must be a multiple of 8 from 64"),
    "steps zero": (["--steps", "0"], "--steps 0: must be a whole number from 1"),
    "width not a number": (["--width", "abc"], "argument --width: 'abc' is not a whole number"),
    "unknown flag": (["--widht", "512"], "unrecognized arguments: --widht"),
    "unknown scheduler": (["--scheduler", "k_lms"], "argument --scheduler: invalid choice"),
    "absent cuda": (["--device", "cuda"], "--device cuda: no CUDA GPU"),
    "unknown device": (["--device", "tpu"], "--device 'tpu': use auto, cpu, mps, cuda or cuda:N"),
    "limit zero": (["--limit", "0"], "argument --limit: '0' must be 1 or more"),
    "samples negative": (["--samples", "-3"], "argument --samples"),
    "backwards sample range": (["--sample-range", "5:2"], "argument --sample-range: '5:2' must be A:B"),
    "sample range without colon": (["--sample-range", "5"], "must be A:B"),
    "missing local model": (["--model", "./no/such/model"], "--model ./no/such/model: no such file or folder"),
    "pickle checkpoint": (["--model", "weights.ckpt"], "pickle checkpoints"),
    "pickle refiner": (["--refiner", "--refiner-model", "refiner.bin"], "--refiner-model refiner.bin: pickle"),
    "nan guidance": (["--guidance-scale", "nan"], "--guidance-scale nan: must be a number"),
    "refiner switch out of range": (["--refiner-switch", "1.5"], "--refiner-switch 1.5: must be between 0 and 1"),
    "refiner switch leaves no steps": (["--refiner", "--refiner-model", "tiny", "--steps", "1"], "leaves no step"),
    "negative seed": (["--seed", "-1"], "--seed -1: must be a whole number from 0"),
    "float16 on cpu": (["--dtype", "float16", "--device", "cpu"], "--dtype float16 on cpu"),
    "batch size zero": (["--batch-size", "0"], "argument --batch-size"),
    "offload on cpu": (["--offload", "model", "--device", "cpu"], "--offload model: offloading"),
    "hub model offline": (["--model", "stabilityai/stable-diffusion-xl-base-1.0"], "--model tiny"),
}


@pytest.mark.parametrize("name", list(FLAG_CASES))
def test_bad_flags(name, workdir, tiny_model, capsys, monkeypatch):
    flags, expected = FLAG_CASES[name]
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    if "--model" not in flags:
        flags = ["--model", str(tiny_model / "base"), *flags]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    code = run_cli("generate", "--prompts-file", "p.json", *SMALL[2:4], *flags)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["p.json"]


def test_model_folder_that_is_not_a_pipeline(workdir, capsys):
    (workdir / "not_a_model").mkdir()
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1)))
    assert run_cli("generate", "--prompts-file", "p.json", "--model", "not_a_model") == 2
    assert "no model_index.json" in capsys.readouterr().err
    assert not (workdir / "images").exists()


# Any bytes in → a valid prompts file or our documented error, never anything else.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_any_bytes(data):
    try:
        validate_prompts(parse_prompts_json(data, "fuzz.json"), "fuzz.json")
    except PromptFileError as exc:
        assert str(exc).startswith("fuzz.json: ")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["samples", "sample_idx", "prompts", "prompt_id", "mode", "temperature", "visual_prompt",
                         "error", "metadata", "x"]), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_fuzz_json_shaped_like_prompts(value):
    data = json.dumps(value).encode()
    try:
        parsed = validate_prompts(parse_prompts_json(data, "fuzz.json"), "fuzz.json")
    except PromptFileError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        keys = [(s.sample_idx, p.prompt_id) for s in parsed.samples for p in s.prompts]
        assert len(keys) == len(set(keys))


@pytest.mark.parametrize("flags, doc, expected", [
    (["--sample-range", "500:600"], prompts_doc(samples=3),
     "--sample-range 500:600 selects no sample: the file holds 3 sample(s) (sample_idx 0 to 2), 3 with prompts, "
     "15 prompt(s) in all"),
    (["--sample-range", "7:"], prompts_doc(samples=3, error_samples=(1,)),
     "--sample-range 7: selects no sample: the file holds 3 sample(s) (sample_idx 0 to 2), 2 with prompts"),
    (["--samples", "2", "--limit", "4"], {"samples": []},
     "--samples 2 --limit 4 selects no sample: the file holds 0 sample(s), 0 with prompts"),
    ([], {"samples": []}, "no sample to generate: the file holds 0 sample(s)"),
])
def test_an_empty_selection_says_what_the_file_holds(flags, doc, expected, workdir, tiny_model, capsys):
    (workdir / "p.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "p.json", "--model", str(tiny_model / "base"), *SMALL, *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("music2image: error: p.json: ") and expected in err, err
    assert sorted(p.name for p in workdir.iterdir()) == ["p.json"]  # no output folder


# A hostile output folder: links planted where we write, a folder we may not write to. One message (exit 2) that
# names the link, before any model loads; nothing written, nothing outside the folder touched.
LINKED_OUTPUT_CASES = {
    "lock": ".music2image.lock",
    "text log": "generate_images.log",
    "journal": "generation_journal.jsonl",
    "journal shard": "generation_journal.1.jsonl",
    "log JSON": "image_generation_log.json",
    "sample folder": "sample_000",
    "other sample folder": "sample_042",
}


@pytest.mark.parametrize("name", list(LINKED_OUTPUT_CASES))
def test_a_link_planted_in_the_output_folder_is_refused(name, workdir, capsys):
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious\n")
    (outside / ".stale.png.1.tmp").write_text("not ours\n")
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=2)))
    images = workdir / "images"
    images.mkdir()
    link = images / LINKED_OUTPUT_CASES[name]
    link.symlink_to(outside if name.endswith("folder") else outside / "precious.txt")
    outside_before = {p.name: p.read_bytes() for p in outside.iterdir()}

    assert run_cli("generate", "--prompts-file", "p.json", "--model", "tiny", *SMALL) == 2
    err = capsys.readouterr().err
    assert err.count("music2image: error:") == 1 and "Traceback" not in err
    assert f"images/{link.name} is a symbolic link to {outside}" in err and "loaded" not in err
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == outside_before
    assert sorted(p.name for p in images.iterdir()) == [link.name]  # nothing written, the lock released


def test_stale_temporaries_are_not_deleted_through_a_linked_sample_folder(workdir):
    from music2image.outputs import remove_stale_temporaries

    (workdir / "outside").mkdir()
    (workdir / "outside" / ".a.png.12.tmp").write_bytes(b"someone else's")
    images = workdir / "images"
    (images / "sample_000").mkdir(parents=True)
    (images / "sample_000" / ".b.png.12.tmp").write_bytes(b"ours")
    (images / "sample_001").symlink_to(workdir / "outside")
    assert remove_stale_temporaries(images) == 1
    assert (workdir / "outside" / ".a.png.12.tmp").exists() and not (images / "sample_000" / ".b.png.12.tmp").exists()


def test_stale_temporaries_are_our_names_only_in_the_folder_and_its_sample_folders(workdir):
    from music2image.outputs import remove_stale_temporaries

    images = workdir / "images"
    for folder in (images, images / "sample_000", images / "other", images / "sample_001" / "deeper"):
        folder.mkdir(parents=True, exist_ok=True)
        for name in (".log.json.7.ab12.tmp", ".x.tmp", ".tmp", "x.tmp", ".x.tmp.bak", ".X.TMP"):
            (folder / name).write_bytes(b"")
    (images / "sample_002").write_bytes(b"a file named like a folder")
    assert remove_stale_temporaries(images) == 4
    for folder in (images, images / "sample_000"):
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith((".", "x"))) == [
            ".X.TMP", ".tmp", ".x.tmp.bak", "x.tmp"]
    assert len(list((images / "other").iterdir())) == len(list((images / "sample_001" / "deeper").iterdir())) == 6


def test_the_write_path_never_follows_a_link(workdir):
    from music2image.outputs.files import Files, LinkedPathError

    (workdir / "outside").mkdir()
    precious = workdir / "outside" / "precious.txt"
    precious.write_text("precious\n")
    (workdir / "images").mkdir()
    (workdir / "images" / ".x.tmp").symlink_to(precious)
    with pytest.raises(LinkedPathError, match="is a symbolic link"):
        Files().write_temporary(workdir / "images" / ".x.tmp", b"clobbered")  # O_CREAT|O_EXCL|O_NOFOLLOW
    (workdir / "images" / "sample_000").symlink_to(workdir / "outside")
    with pytest.raises(LinkedPathError, match="sample_000 is a symbolic link"):
        Files().write_into(workdir / "images", "sample_000/a.png", b"image")
    with pytest.raises(LinkedPathError, match="leaves the output folder"):
        Files().write_into(workdir / "images", "../escaped.png", b"image")
    assert sorted(p.name for p in (workdir / "outside").iterdir()) == ["precious.txt"]
    assert precious.read_text() == "precious\n" and not (workdir / "escaped.png").exists()


def test_a_link_planted_during_the_run_stops_it_without_writing_through_it(workdir, capsys):
    """The check before the run cannot see a link planted later: the write path refuses it too (exit 1, as for
    any write that fails mid-run, and what was made is kept)."""
    from music2image.outputs import Files

    (workdir / "outside").mkdir()
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=2, per_sample=2)))

    class Planting(Files):
        def write_atomic(self, path, data):
            if Path(path).suffix == ".png" and not (workdir / "images" / "sample_001").exists():
                (workdir / "images" / "sample_001").symlink_to(workdir / "outside")
            return super().write_atomic(path, data)

    assert run_cli("generate", "--prompts-file", "p.json", "--model", "tiny", *SMALL, files=Planting()) == 1
    err = capsys.readouterr().err
    assert "sample_001 is a symbolic link" in err and "Traceback" not in err
    assert list((workdir / "outside").iterdir()) == []
    assert len(list((workdir / "images" / "sample_000").glob("*.png"))) == 2


def test_an_unwritable_output_folder_is_one_message(workdir):
    """As root (CI) permissions do not bind: there the command runs without the capability that overrides them."""
    import os
    import shutil
    import subprocess

    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    (workdir / "images").mkdir()
    (workdir / "images").chmod(0o555)
    command = [sys.executable, "-m", "music2image", "generate", "--prompts-file", "p.json", "--model", "tiny", *SMALL]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = [shutil.which("setpriv"), "--bounding-set", drop, "--inh-caps", drop, *command]
    out = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert out.stderr == "music2image: error: images: cannot lock the output folder: Permission denied\n"
    assert list((workdir / "images").iterdir()) == []


@pytest.mark.parametrize("case", ["a file in the way", "no permission", "a dangling link", "a folder not searchable"])
def test_an_output_folder_that_cannot_be_created_is_refused_before_loading(case, workdir):
    """Before, the folder was first created after the models had loaded (minutes with real weights)."""
    import os
    import shutil
    import subprocess

    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    if case == "a file in the way":
        output, expected = "p.json/images", "p.json is not a folder"
    elif case == "a dangling link":  # mkdir meets the link: "File exists", after loading
        (workdir / "locked").symlink_to(workdir / "nowhere")
        output, expected = "locked/images", "locked is not a folder"
    else:
        (workdir / "locked").mkdir()
        (workdir / "locked").chmod(0o555 if case == "no permission" else 0o000)
        output, expected = "locked/new/images", "no permission to create anything in locked"
    # The old code failed too, after loading, with "cannot create the output folder (Not a directory)".
    command = [sys.executable, "-m", "music2image", "generate", "--prompts-file", "p.json", "--output-dir", output,
               "--model", "tiny", *SMALL]
    if os.geteuid() == 0:  # as root, permissions bind only without the capability that overrides them
        drop = "-dac_override,-dac_read_search"
        command = [shutil.which("setpriv"), "--bounding-set", drop, "--inh-caps", drop, *command]
    out = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"music2image: error: {output}: cannot create the output folder: {expected}; nothing was written.\n"
    assert sorted(p.name for p in workdir.iterdir()) == sorted(["p.json", *(["locked"] if case != "a file in the way" else [])])


def test_the_uncreatable_folder_check_comes_before_any_model_loads(workdir, monkeypatch, capsys):
    from music2image.engine import Engine

    def refuse(*args, **kwargs):
        raise AssertionError("the models were loaded")

    monkeypatch.setattr(Engine, "load", refuse)
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    assert run_cli("generate", "--prompts-file", "p.json", "--output-dir", "p.json/images", "--model", "tiny",
                   *SMALL) == 2
    assert "p.json is not a folder" in capsys.readouterr().err


def test_file_names_never_send_escape_sequences_to_the_terminal(workdir, capsys):
    # A name holding ESC[2J (clear screen) was printed raw, in the error and in the warning of a skipped file.
    assert run_cli("prompts", "gone\x1b[2J.wav", "--output", "p.json") == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "gone\\u001b[2J.wav: not found" in err
    (workdir / "torn\x1b]0;owned\x07.wav").write_bytes(b"RIFF")
    assert run_cli("prompts", "torn\x1b]0;owned\x07.wav", "--output", "p.json") == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "skipping torn\\u001b]0;owned\\u0007.wav" in err


def test_a_path_that_is_not_utf8_is_printed_escaped_on_a_strict_stdout(workdir, monkeypatch):
    import io
    import os

    sys.path.insert(0, str(Path(__file__).parent / "helpers"))
    from synth import progression, write_wav

    write_wav(workdir / "ok.wav", progression(57, "minor", 80, 4))
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")  # as under LANG=en_US.UTF-8
    monkeypatch.setattr(sys, "stdout", stdout)
    # The file was written, then printing its name raised UnicodeEncodeError: a traceback after the work was done.
    assert run_cli("prompts", "ok.wav", "--quiet", "--output", os.fsdecode(b"caf\xe9.json")) == 0
    stdout.flush()
    assert stdout.buffer.getvalue().decode().endswith("-> caf\\udce9.json\n")
    assert (workdir / os.fsdecode(b"caf\xe9.json")).is_file()
