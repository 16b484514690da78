"""The README's commands are run here, so they cannot rot."""

import pytest
import re
import shlex
import shutil

from conftest import REPO, read_json, run_subprocess


def _bash_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines() if line.strip()]


def test_readme_has_install_main_job_and_test_commands():
    commands = _bash_blocks()
    assert any(c.startswith("python3 -m venv .venv") and "pip install torch==2.13.0" in c for c in commands)
    assert "music2image generate --prompts-file examples/visual_prompts.json" in commands
    assert "python -m pytest" in commands
    assert "python -m pytest" in (REPO / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
def test_readme_offline_smoke_run_works_as_written(workdir):
    (smoke,) = [c for c in _bash_blocks() if c.startswith("music2image generate") and " --model tiny " in f"{c} "]
    shutil.copytree(REPO / "examples", workdir / "examples")
    argv = shlex.split(smoke)
    assert argv[0] == "music2image"
    out = run_subprocess(["-m", "music2image", *argv[1:]], cwd=workdir)
    assert out.returncode == 0, out.stderr
    summary = read_json(workdir / "images_tiny" / "image_generation_summary.json")
    assert summary["total_images_generated"] == 10 and summary["success_rate"] == 100.0


@pytest.mark.slow
def test_readme_single_file_commands_work_as_written(workdir):
    make = next(c for c in _bash_blocks() if c.startswith("music2image make-tiny-model"))
    generate = next(c for c in _bash_blocks() if c.startswith("music2image generate") and ".safetensors" in c
                    and "tiny" in c)
    shutil.copytree(REPO / "examples", workdir / "examples")
    for line in (make, generate):
        out = run_subprocess(["-m", "music2image", *shlex.split(line)[1:]], cwd=workdir)
        assert out.returncode == 0, out.stderr
    log = read_json(workdir / "images_single_file" / "image_generation_log.json")
    assert log["metadata"]["successful"] == 5 and len(log["metadata"]["model_sha256"]) == 64


def test_example_prompts_fit_clip_and_follow_the_upstream_shape():
    import json

    import instant_clip_tokenizer

    from music2image.prompts import load_prompts

    parsed = load_prompts(REPO / "examples" / "visual_prompts.json")
    assert len(parsed.samples) == 100
    tokenizer = instant_clip_tokenizer.Tokenizer()
    raw = json.loads((REPO / "examples" / "visual_prompts.json").read_text())
    for sample, raw_sample in zip(parsed.samples, raw["samples"]):
        assert [(p.mode, p.temperature) for p in sample.prompts] == [("convergent", 0.4)] * 3 + [("divergent", 0.8)] * 2
        assert {"key", "tonality", "tempo", "mood"} <= set(raw_sample["musical_features"])
        for prompt in sample.prompts:
            assert len(tokenizer.encode(prompt.visual_prompt)) + 2 <= 77  # + start and end tokens


@pytest.mark.slow
def test_readme_from_music_commands_work_as_written(workdir):
    import sys

    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    from synth import progression, write_wav

    (workdir / "music").mkdir()
    write_wav(workdir / "music" / "a_major.wav", progression(57, "major", 132, 6))
    write_wav(workdir / "music" / "d_minor.flac", progression(62, "minor", 76, 6))
    run_line = next(c for c in _bash_blocks() if c.startswith("music2image run"))
    prompts_line = next(c for c in _bash_blocks() if c.startswith("music2image prompts"))
    for line in (run_line, prompts_line):
        out = run_subprocess(["-m", "music2image", *shlex.split(line)[1:]], cwd=workdir)
        assert out.returncode == 0, out.stderr
    summary = read_json(workdir / "images_from_music" / "image_generation_summary.json")
    assert summary["total_images_generated"] == 10 and summary["by_mode"] == {"convergent": 6, "divergent": 4}
    # `run` keeps its prompts inside its output folder (before, ./generated_prompts/visual_prompts_complete.json).
    assert read_json(workdir / "my_prompts.json") == read_json(workdir / "images_from_music" / "visual_prompts.json")
    assert not (workdir / "generated_prompts").exists()


@pytest.mark.slow
def test_readme_seed_script_offline_line_works_in_a_fresh_checkout(workdir):
    (line,) = [c for c in _bash_blocks() if c.startswith("python3 generate_images_from_prompts.py")]
    shutil.copytree(REPO / "examples", workdir / "examples")  # what a fresh checkout has: no generated_prompts/
    argv = shlex.split(line)
    out = run_subprocess([str(REPO / argv[1]), *argv[2:]], cwd=workdir)
    assert out.returncode == 0, out.stderr
    summary = read_json(workdir / "images_shim" / "image_generation_summary.json")
    assert summary["total_images_generated"] == 10 and summary["success_rate"] == 100.0


def test_readme_exit_code_table_lists_every_exit_status():
    from music2image.errors import ExitStatus

    section = (REPO / "README.md").read_text().split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    codes = {int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    assert codes == {int(status) for status in ExitStatus}
    from music2image.cli import EXIT_CODES_HELP  # what `generate --help` lists

    assert {int(m) for m in re.findall(r"^  (\d+) ", EXIT_CODES_HELP, flags=re.M)} == codes
