"""Single-file checkpoints (the A1111/Civitai layout) for --model, --refiner-model and --vae, via from_single_file."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL, model_flags, prompts_doc, read_json, run_cli
from PIL import Image

from music2image.regenerate import read_recipe
from music2image.single_file import checkpoint_kind, checkpoint_sha256
from music2image.single_file_layout import save_single_file, single_file_state_dict


def _pixels(folder):
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _perturbed(pipe, seed):
    """The same pipeline with every weight moved by seeded noise: other weights, same architecture."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
            if module is not None:
                for parameter in module.parameters():
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return pipe


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory, tiny_model):
    """Single-file base, refiner and VAE-alone checkpoints with weights unlike the tiny model's."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    folder = tmp_path_factory.mktemp("other")
    base = _perturbed(StableDiffusionXLPipeline.from_pretrained(tiny_model / "base"), seed=11)
    refiner = _perturbed(StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_model / "refiner"), seed=12)
    save_single_file(base, folder / "base.safetensors")
    save_single_file(refiner, folder / "refiner.safetensors")
    save_single_file(base.vae, folder / "vae.safetensors")
    return folder, base, refiner


@pytest.fixture
def prompts(workdir):
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1)))
    return ["generate", "--prompts-file", "p.json", "--limit", "2", "--quiet", *SMALL]


def single_file_flags(tiny_model, refiner=False, folder=None):
    folder = folder or tiny_model
    flags = ["--model", str(folder / "base.safetensors"), "--model-config", str(tiny_model / "base")]
    if refiner:
        flags += ["--refiner", "--refiner-model", str(folder / "refiner.safetensors"),
                  "--refiner-model-config", str(tiny_model / "refiner")]
    return flags


def test_make_tiny_model_writes_checkpoints_in_the_original_layout(tiny_model):
    from safetensors import safe_open

    with safe_open(str(tiny_model / "base.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    # Names as in Stability's sd_xl_base_1.0.safetensors, which A1111, ComfyUI and diffusers read.
    for key in ("model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.middle_block.1.norm.weight",
                "model.diffusion_model.output_blocks.0.0.in_layers.0.weight", "model.diffusion_model.label_emb.0.0.weight",
                "first_stage_model.decoder.up.0.block.0.conv1.weight", "first_stage_model.encoder.mid.attn_1.q.weight",
                "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
                "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
                "conditioner.embedders.1.model.text_projection"):
        assert key in keys, key
    assert not any(k.startswith(("unet.", "down_blocks.", "text_encoder")) for k in keys)
    assert checkpoint_kind(tiny_model / "base.safetensors") == "base"
    assert checkpoint_kind(tiny_model / "refiner.safetensors") == "refiner"


def test_from_single_file_reads_exactly_the_weights_in_the_file(tiny_model, other_weights):
    """Every tensor diffusers loads equals the one written; none comes from the config folder's weights."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    folder, base, refiner = other_weights
    original = StableDiffusionXLPipeline.from_pretrained(tiny_model / "base")
    for cls, part, written in ((StableDiffusionXLPipeline, "base", base), (StableDiffusionXLImg2ImgPipeline, "refiner", refiner)):
        loaded = cls.from_single_file(str(folder / f"{part}.safetensors"), config=str(tiny_model / part))
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            if getattr(written, name) is None:
                continue
            expected, got = getattr(written, name).state_dict(), getattr(loaded, name).state_dict()
            assert expected.keys() == got.keys(), name
            assert all(torch.equal(expected[k], got[k]) for k in expected), f"{part}.{name}"
    unchanged = original.unet.state_dict()
    assert not torch.equal(unchanged["conv_in.weight"], base.unet.state_dict()["conv_in.weight"])
    # Writing what was read gives the same file contents back.
    reread = StableDiffusionXLPipeline.from_single_file(str(folder / "base.safetensors"), config=str(tiny_model / "base"))
    again, first = single_file_state_dict(reread), single_file_state_dict(base)
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)


def test_generate_from_single_files_equals_the_diffusers_folders(prompts, tiny_model, workdir):
    assert run_cli(*prompts, *model_flags(tiny_model, refiner=True), "--output-dir", "folders") == 0
    assert run_cli(*prompts, *single_file_flags(tiny_model, refiner=True), "--output-dir", "files") == 0
    folders, files = _pixels(workdir / "folders"), _pixels(workdir / "files")
    assert folders.keys() == files.keys() and len(files) == 2
    assert all(np.array_equal(folders[k], files[k]) for k in files)  # the same weights, so the same pixels

    base_hash, refiner_hash = _sha256(tiny_model / "base.safetensors"), _sha256(tiny_model / "refiner.safetensors")
    document = read_recipe(next((workdir / "files").rglob("*.png")))
    recipe = document["recipe"]
    assert recipe["model"] == str(tiny_model / "base.safetensors") and recipe["model_sha256"] == base_hash
    assert recipe["model_config"] == str(tiny_model / "base")
    assert recipe["refiner_model_sha256"] == refiner_hash
    assert recipe["refiner_model_config"] == str(tiny_model / "refiner")
    # A1111's infotext: a checkpoint is named by its stem and its 10-digit sha256 prefix (what Civitai matches).
    assert f"Model hash: {base_hash[:10]}, Model: base," in document["parameters"]
    assert f"Refiner: refiner [{refiner_hash[:10]}]" in document["parameters"]
    assert read_json(workdir / "files" / "image_generation_log.json")["metadata"]["model_sha256"] == base_hash
    # Folder and hub models keep the recipe they always had (old output folders still resume).
    assert "model_sha256" not in read_recipe(next((workdir / "folders").rglob("*.png")))["recipe"]


def test_a_changed_checkpoint_is_another_recipe(prompts, tiny_model, other_weights, workdir, capsys):
    folder = workdir / "models"
    folder.mkdir()
    shutil.copy(tiny_model / "base.safetensors", folder / "base.safetensors")
    flags = [*prompts, *single_file_flags(tiny_model, folder=folder)]
    assert run_cli(*flags) == 0
    made = {p: p.stat().st_mtime_ns for p in (workdir / "images").rglob("*.png")}
    assert run_cli(*flags) == 0  # resumes: nothing to make
    assert {p: p.stat().st_mtime_ns for p in (workdir / "images").rglob("*.png")} == made
    image = next(iter(made))
    assert run_cli("regenerate", str(image), "--output", str(workdir / "again.png")) == 0
    assert (workdir / "again.png").read_bytes() == image.read_bytes()

    # Another checkpoint at the same path: the folder's images are another recipe's, and regenerating says why not.
    shutil.copy(other_weights[0] / "base.safetensors", folder / "base.safetensors")
    capsys.readouterr()
    assert run_cli(*flags) == 2
    err = capsys.readouterr().err
    assert "holds images made with another recipe" in err and "model_sha256" in err
    assert run_cli("regenerate", str(image), "--output", str(workdir / "changed.png")) == 2
    assert "the checkpoint changed" in capsys.readouterr().err
    assert not (workdir / "changed.png").exists()
    assert {p: p.stat().st_mtime_ns for p in (workdir / "images").rglob("*.png")} == made
    assert run_cli(*flags, "--output-dir", "other") == 0
    other = _pixels(workdir / "other")
    assert all(not np.array_equal(other[k], v) for k, v in _pixels(workdir / "images").items())


def test_a_single_file_vae(prompts, tiny_model, other_weights, workdir):
    import torch
    from diffusers import AutoencoderKL

    folder, base, _ = other_weights
    with torch.no_grad():
        base.vae.save_pretrained(workdir / "vae_folder")
    assert checkpoint_kind(folder / "vae.safetensors") == "vae"
    common = [*prompts, *model_flags(tiny_model)]
    assert run_cli(*common, "--output-dir", "plain") == 0
    assert run_cli(*common, "--vae", str(workdir / "vae_folder"), "--output-dir", "folder") == 0
    assert run_cli(*common, "--vae", str(folder / "vae.safetensors"), "--output-dir", "file") == 0
    plain, from_folder, from_file = (_pixels(workdir / d) for d in ("plain", "folder", "file"))
    assert all(np.array_equal(from_folder[k], from_file[k]) for k in plain)
    assert all(not np.array_equal(plain[k], from_file[k]) for k in plain)  # really another VAE
    # The config came from the base model (SDXL's scaling factor), not guessed from the file.
    loaded = AutoencoderKL.from_single_file(str(folder / "vae.safetensors"), config=str(tiny_model / "base"),
                                            subfolder="vae")
    assert loaded.config.scaling_factor == AutoencoderKL.from_pretrained(tiny_model / "base", subfolder="vae").config.scaling_factor
    recipe = read_recipe(next((workdir / "file").rglob("*.png")))["recipe"]
    assert recipe["vae_sha256"] == _sha256(folder / "vae.safetensors")


def test_the_hash_is_cached_by_size_and_mtime(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"one")
    assert checkpoint_sha256(path) == hashlib.sha256(b"one").hexdigest()
    from music2image.single_file import hash_cache_path  # under $XDG_CACHE_HOME: the test session's

    entries = json.loads(hash_cache_path().read_text())
    entry = entries[str(path.resolve())]
    assert entry["size"] == 3 and entry["sha256"] == hashlib.sha256(b"one").hexdigest()
    # A cached entry is trusted while size and mtime match (the file is not read again) ...
    entries[str(path.resolve())]["sha256"] = "cached"
    hash_cache_path().write_text(json.dumps(entries))
    assert checkpoint_sha256(path) == "cached"
    # ... and a rewritten file is hashed again.
    path.write_bytes(b"three")
    os.utime(path, ns=(entry["mtime_ns"] + 10**9, entry["mtime_ns"] + 10**9))
    assert checkpoint_sha256(path) == hashlib.sha256(b"three").hexdigest()


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    from safetensors.torch import save_file
    import torch

    folder = tmp_path_factory.mktemp("odd")
    save_file({"lora_unet_down.weight": torch.zeros(2, 2)}, str(folder / "lora.safetensors"))
    (folder / "broken.safetensors").write_bytes(b"not a safetensors file at all")
    (folder / "notes.txt").write_text("hello")
    return folder


BAD_CASES = {
    "a lora as the model": (["--model", "{odd}/lora.safetensors"], "not a single-file SDXL checkpoint"),
    "not safetensors inside": (["--model", "{odd}/broken.safetensors"], "not a readable safetensors file"),
    "a text file": (["--model", "{odd}/notes.txt"], "is a file; give a .safetensors checkpoint"),
    "refiner as the base": (["--model", "{tiny}/refiner.safetensors"], "this is an SDXL refiner checkpoint, not an SDXL base"),
    "base as the refiner": (["--refiner", "--refiner-model", "{tiny}/base.safetensors"],
                            "this is an SDXL base checkpoint, not an SDXL refiner"),
    "a checkpoint as the vae": (["--vae", "{tiny}/base.safetensors"], "this is an SDXL base checkpoint, not a VAE alone"),
    "config for a folder": (["--model-config", "{tiny}/base"], "--model-config {tiny}/base: describes a single-file --model"),
    "missing config": (["--model", "{tiny}/base.safetensors", "--model-config", "./nowhere"],
                       "--model-config ./nowhere: no such file or folder"),
    "missing checkpoint": (["--model", "./nowhere.safetensors"], "--model ./nowhere.safetensors: no such file or folder"),
    "no config offline": (["--model", "{tiny}/base.safetensors"], "offline, give --model-config a local diffusers folder"),
}


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_single_files(name, workdir, tiny_model, odd_files, capsys):
    flags, expected = BAD_CASES[name]
    flags = [f.format(tiny=tiny_model, odd=odd_files) for f in flags]
    expected = expected.format(tiny=tiny_model)
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1, per_sample=1)))
    if "--model" not in flags:
        flags = ["--model", str(tiny_model / "base"), *flags]
    code = run_cli("generate", "--prompts-file", "p.json", *SMALL, *flags)
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
    assert sorted(p.name for p in workdir.iterdir()) == ["p.json"]  # no output folder, nothing written


def test_a_file_name_that_is_not_utf8_is_hashed_not_a_traceback(tmp_path):
    # Python holds such a name with surrogates; the hash cache (UTF-8 JSON) cannot store it, which crashed the run.
    path = Path(os.fsdecode(bytes(tmp_path) + b"/model\xff.safetensors"))
    path.write_bytes(b"one")
    assert checkpoint_sha256(path) == hashlib.sha256(b"one").hexdigest()
