import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--width", "64", "--height", "64", "--steps", "2"]


def prompts_doc(samples: int = 3, per_sample: int = 5, error_samples: tuple = ()) -> dict:
    """A small prompts file shaped like the audio stage's: 3 convergent (T=0.4) + 2 divergent (T=0.8) each."""
    words = ["golden concert stage", "stormy violet sea", "quiet snowy forest", "neon city street", "calm blue lake"]
    docs = []
    for idx in range(samples):
        if idx in error_samples:
            docs.append({"sample_idx": idx, "error": "audio decode failed", "prompts": []})
            continue
        prompts = []
        for pid in range(per_sample):
            mode, temp = ("convergent", 0.4) if pid < 3 else ("divergent", 0.8)
            prompts.append({"prompt_id": pid, "mode": mode, "temperature": temp,
                            "visual_prompt": f"{words[(idx + pid) % 5]}, painting number {idx}-{pid}"})
        docs.append({"sample_idx": idx, "musical_features": {"key": "C", "tempo": 120.0}, "abc_notation": "X:1",
                     "prompts": prompts})
    return {"metadata": {"source": "tests"}, "samples": docs}


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory):
    """`--model tiny` builds into $XDG_CACHE_HOME; keep that inside the test session, and never hit the network."""
    cache = tmp_path_factory.mktemp("cache")
    old = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "HF_HUB_OFFLINE")}
    os.environ["XDG_CACHE_HOME"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield cache
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from music2image.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def prompts_file(workdir) -> Path:
    path = workdir / "generated_prompts" / "visual_prompts_complete.json"
    path.parent.mkdir()
    path.write_text(json.dumps(prompts_doc(samples=3, error_samples=(1,))))
    return path


def model_flags(tiny_model: Path, refiner: bool = False) -> list[str]:
    flags = ["--model", str(tiny_model / "base")]
    if refiner:
        flags += ["--refiner", "--refiner-model", str(tiny_model / "refiner")]
    return flags


def run_cli(*args: str, files=None) -> int:
    """`music2image ARGS` in this process; `files`: a music2image.outputs.Files that observes or breaks writes."""
    from music2image.cli import main
    from music2image.outputs import DEFAULT_FILES

    return main(list(args), files=files or DEFAULT_FILES)


@pytest.fixture
def ten_prompts(workdir):
    """`generate --prompts-file p.json` with 2 samples x 5 prompts in the working directory."""
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=2)))
    return ["generate", "--prompts-file", "p.json"]


def run_subprocess(args: list[str], cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# Fields that are about *when* or *how long*, not *what*: the only ones a resumed run may differ in.
VOLATILE = frozenset({"generation_timestamp", "elapsed_seconds", "images_per_second", "generation_time",
                      "generated_this_run"})


def stable(document, volatile=VOLATILE):
    """`document` without the volatile fields, at any depth (to compare logs and summaries of two runs)."""
    if isinstance(document, dict):
        return {k: stable(v, volatile) for k, v in document.items() if k not in volatile}
    if isinstance(document, list):
        return [stable(v, volatile) for v in document]
    return document


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium_path() -> str:
    """Debian's Chromium (.ci/run installs it), for the tests that look at our pages in a real browser."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def dump_dom(chromium, url, tmp_path) -> str:
    """The DOM of `url` after its scripts ran, as headless Chromium sees it."""
    out = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=3000", "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
