"""The command line as a person meets it: no guessed abbreviations, help for every command, exit codes that fit
the command, progress that shows off a terminal, and `run` keeping its prompts with its images."""

import re
import sys
from pathlib import Path

import pytest
from conftest import REPO, SMALL, model_flags, read_json, run_cli, run_subprocess

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from synth import progression, write_wav  # noqa: E402

from music2image.cli import build_parser  # noqa: E402


def _commands() -> dict:
    return build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("argv, unknown", [
    (["generate", "--output", "x"], "--output x"),  # argparse would have taken it for --output-dir
    (["generate", "--prompts", "p.json"], "--prompts p.json"),
    (["prompts", "a.wav", "--out", "x.json"], "--out x.json"),
    (["grid", "images", "--thumb", "64"], "--thumb 64"),
])
def test_abbreviated_flags_are_refused_not_guessed(argv, unknown, workdir, capsys):
    assert run_cli(*argv) == 2
    assert f"unrecognized arguments: {unknown}" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_every_parser_refuses_abbreviations_and_every_command_says_what_it_does():
    assert build_parser().allow_abbrev is False
    for name, parser in _commands().items():
        assert parser.allow_abbrev is False, name
        assert parser.description and len(parser.description) > 40, name


def test_prompts_help_lists_its_own_exit_codes(capsys):
    assert run_cli("prompts", "--help") == 0
    out = capsys.readouterr().out
    assert "every image succeeded" not in out and "images failed" not in out
    assert "0    the prompts file was written" in out and "no audio file gave prompts" in out


def test_evaluate_help_lists_its_own_exit_codes(capsys):
    """Before, it listed generate's: "0 every image succeeded", "1 ... some images failed", which evaluate never
    means (it evaluates a folder with failed images and exits 0)."""
    assert run_cli("evaluate", "--help") == 0
    out = capsys.readouterr().out
    assert "every image succeeded" not in out and "images failed" not in out
    assert "0    the evaluation was written" in out and "no successful image" in out


def test_the_seed_script_names_itself_in_help_and_errors(workdir):
    out = run_subprocess([str(REPO / "generate_images_from_prompts.py"), "--help"], cwd=workdir)
    assert out.returncode == 0 and out.stdout.startswith("usage: generate_images_from_prompts.py [-h]")
    assert "music2image generate" not in out.stdout
    out = run_subprocess([str(REPO / "generate_images_from_prompts.py"), "--output", "x"], cwd=workdir)
    assert out.returncode == 2
    assert out.stderr == "generate_images_from_prompts.py: error: unrecognized arguments: --output x (see --help)\n"


def test_generate_progress_off_a_terminal_prints_each_tenth(ten_prompts, tiny_model, workdir, capsys):
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL) == 0
    err = capsys.readouterr().err
    lines = re.findall(r"^progress: (\d+)/10 images \((\d+)%\)(.*)$", err, re.M)
    assert [(int(n), int(p)) for n, p, _ in lines] == [(n, 10 * n) for n in range(1, 11)]
    assert all(re.match(r", [\d.e+]+ images/s(, \d+[hms]\S* left)?$", rest) for _, _, rest in lines)
    assert lines[0][2].endswith("left") and not lines[-1][2].endswith("left")
    assert "progress: 10/10 images (100%)" in (workdir / "images" / "generate_images.log").read_text()


def test_progress_interval_is_a_documented_setting():
    from music2image.progress import Progress

    now = [0.0]
    logged = []
    progress = Progress(1000, done=100, what="images", bar=False, interval=30, clock=lambda: now[0])
    import logging

    class Collect(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())

    handler = Collect()
    logging.getLogger("music2image").addHandler(handler)
    try:
        for second in range(1, 131):  # one image a second, from 100 done (a resumed run)
            now[0] = float(second)
            progress.update()
    finally:
        logging.getLogger("music2image").removeHandler(handler)
    # Every 30 s, and where a tenth is crossed (200/1000 at 100 s); the rate counts only this run's images.
    assert logged == ["progress: 130/1000 images (13%), 1 images/s, 14m30s left",
                      "progress: 160/1000 images (16%), 1 images/s, 14m00s left",
                      "progress: 190/1000 images (19%), 1 images/s, 13m30s left",
                      "progress: 200/1000 images (20%), 1 images/s, 13m20s left",
                      "progress: 230/1000 images (23%), 1 images/s, 12m50s left"]


@pytest.mark.slow
def test_prompts_progress_off_a_terminal(workdir, capsys):
    for name, root in (("a.wav", 57), ("b.wav", 62)):
        write_wav(workdir / name, progression(root, "major", 120, 2))
    assert run_cli("prompts", "a.wav", "b.wav", "--output", "p.json", "--progress-interval", "1000") == 0
    err = capsys.readouterr().err
    assert re.search(r"^progress: 1/2 files \(50%\), [\d.e+]+ files/s, \S+ left$", err, re.M)
    assert re.search(r"^progress: 2/2 files \(100%\), [\d.e+]+ files/s$", err, re.M)


@pytest.mark.parametrize("value", ["0", "-5", "nan", "soon"])
def test_progress_interval_must_be_seconds_above_zero(value, workdir, capsys):
    assert run_cli("generate", "--progress-interval", value) == 2
    assert "argument --progress-interval" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_run_keeps_its_prompts_inside_its_output_folder(workdir, tiny_model):
    """Two `run`s into two folders, from one working directory: each folder holds the prompts of its images, and
    neither refuses the other's (a shared ./generated_prompts/ file made the second one fail)."""
    flags = [*model_flags(tiny_model), *SMALL, "--convergent", "1", "--divergent", "0", "--quiet"]
    for name, root in (("first", 57), ("second", 62)):
        write_wav(workdir / f"{name}.wav", progression(root, "minor", 90, 2))
        assert run_cli("run", f"{name}.wav", "--output-dir", name, *flags) == 0
        prompts = read_json(workdir / name / "visual_prompts.json")
        assert prompts["samples"][0]["source"] == f"{name}.wav"
        assert read_json(workdir / name / "image_generation_log.json")["metadata"]["prompts_file"] == \
            f"{name}/visual_prompts.json"
    assert not (workdir / "generated_prompts").exists()
    # Re-running resumes (the same bytes); an explicit --prompts-file still goes where it is told.
    assert run_cli("run", "first.wav", "--output-dir", "first", *flags) == 0
    assert run_cli("run", "first.wav", "--output-dir", "third", "--prompts-file", "mine.json", *flags) == 0
    assert (workdir / "mine.json").exists() and not (workdir / "third" / "visual_prompts.json").exists()


def test_make_tiny_model_where_it_cannot_write_is_one_message_and_nothing_written(workdir, capsys):
    """Before, a file in the way (or a read-only place) was a traceback from deep inside diffusers' save_pretrained."""
    (workdir / "notes.txt").write_text("a file, not a folder")
    assert run_cli("make-tiny-model", "notes.txt/tiny") == 2
    assert capsys.readouterr().err == ("music2image: error: notes.txt/tiny: cannot write the tiny model there: "
                                       "notes.txt is not a folder; nothing was written\n")
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.txt"]


def test_make_tiny_model_that_fails_half_way_leaves_no_half_written_model(workdir, capsys, monkeypatch):
    """A disk that fills up while the single files are written: one message (exit 1), and no folder of parts."""
    import errno

    import music2image.single_file_layout as layout

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout, "save_single_file", disk_full)
    assert run_cli("make-tiny-model", "tiny") == 1
    err = capsys.readouterr().err
    assert err == "music2image: error: tiny: cannot write the tiny model (No space left on device)\n"
    assert list(workdir.iterdir()) == []


def test_make_tiny_model_prints_only_what_it_wrote(workdir, capsys):
    """Before, two transformers notices (torchvision missing) and four "Writing model shards" bars came with it."""
    import diffusers
    import transformers

    for library in (diffusers, transformers):  # as a fresh process has them, whatever ran before in this one
        library.utils.logging.set_verbosity_warning()
        library.utils.logging.enable_progress_bar()
    assert run_cli("make-tiny-model", "tiny") == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == "tiny SDXL written: --model tiny/base --refiner-model tiny/refiner"
