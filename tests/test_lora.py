"""--lora: a LoRA fused into the base, as few-step models (LCM-LoRA, Lightning, Hyper-SD) and styles need it."""

import hashlib
import json
import shutil

import pytest
from conftest import SMALL, model_flags, prompts_doc, read_json, run_cli

from music2image.regenerate import read_recipe


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory, tiny_model):
    """A random rank-4 LoRA on the tiny UNet's attention, saved the way diffusers saves LoRAs (safetensors)."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    folder = tmp_path_factory.mktemp("lora")
    unet = UNet2DConditionModel.from_pretrained(tiny_model / "base", subfolder="unet")
    torch.manual_seed(0)
    # init_lora_weights=False: random A *and* B, so the LoRA really changes the output (peft's default B is 0).
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                                safe_serialization=True)
    return folder


@pytest.fixture
def prompts(workdir):
    (workdir / "p.json").write_text(json.dumps(prompts_doc(samples=1)))
    return ["generate", "--prompts-file", "p.json", "--limit", "2", "--quiet"]


def _pngs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_lora_changes_the_images_is_in_the_recipe_and_scale_zero_is_the_plain_model(prompts, tiny_model, tiny_lora,
                                                                                      workdir):
    flags = [*prompts, *model_flags(tiny_model), *SMALL]
    assert run_cli(*flags, "--output-dir", "plain") == 0
    assert run_cli(*flags, "--output-dir", "lora", "--lora", str(tiny_lora)) == 0
    assert run_cli(*flags, "--output-dir", "zero", "--lora", str(tiny_lora), "--lora-scale", "0") == 0
    plain, lora, zero = (_pngs(workdir / d) for d in ("plain", "lora", "zero"))
    assert plain.keys() == lora.keys() == zero.keys() and len(plain) == 2
    assert all(plain[k] != lora[k] for k in plain)  # the LoRA is really applied
    # W + 0·BA is W: with scale 0 the pixels are the plain model's (the embedded recipe text differs, so compare pixels)
    from PIL import Image
    import numpy as np

    for key in plain:
        a = np.asarray(Image.open(workdir / "plain" / key))
        b = np.asarray(Image.open(workdir / "zero" / key))
        assert np.array_equal(a, b)
    recipe = read_recipe(next((workdir / "lora").rglob("*.png")))["recipe"]
    assert recipe["lora"] == str(tiny_lora) and recipe["lora_scale"] == 1.0
    # A folder LoRA is the hash of the file diffusers loads from it; a run without a LoRA has no LoRA keys at all.
    weights = (tiny_lora / "pytorch_lora_weights.safetensors").read_bytes()
    assert recipe["lora_sha256"] == hashlib.sha256(weights).hexdigest()
    plain_recipe = read_recipe(next((workdir / "plain").rglob("*.png")))["recipe"]
    assert not {key for key in plain_recipe if key.startswith("lora")}
    assert read_json(workdir / "lora" / "image_generation_log.json")["metadata"]["lora"] == str(tiny_lora)
    # Resuming into the folder without the LoRA is another recipe: refused.
    assert run_cli(*flags, "--output-dir", "lora") == 2


def test_a_single_safetensors_file_and_few_step_settings(prompts, tiny_model, tiny_lora, workdir):
    (weights,) = tiny_lora.glob("*.safetensors")
    assert run_cli(*prompts, *model_flags(tiny_model), "--width", "64", "--height", "64", "--lora", str(weights),
                   "--steps", "1", "--guidance-scale", "0", "--timestep-spacing", "trailing") == 0
    meta = read_json(workdir / "images" / "image_generation_log.json")["metadata"]
    assert meta["successful"] == 2 and meta["timestep_spacing"] == "trailing" and meta["guidance_scale"] == 0


@pytest.mark.parametrize("value, message", [
    ("no/such/lora", "no such file or folder"),
    ("style.bin", "pickle weights"),
    ("notes.txt", "not a .safetensors file"),
])
def test_bad_lora_is_refused_before_anything_loads(value, message, prompts, tiny_model, workdir, capsys):
    (workdir / "style.bin").write_bytes(b"x")
    (workdir / "notes.txt").write_text("x")
    assert run_cli(*prompts, *model_flags(tiny_model), *SMALL, "--lora", value) == 2
    assert message in capsys.readouterr().err
    assert not (workdir / "images").exists()


def test_the_lora_file_is_in_the_recipe_so_other_weights_at_its_path_are_refused(prompts, tiny_model, tiny_lora,
                                                                                 workdir, capsys):
    from safetensors.torch import load_file, save_file

    lora = workdir / "style.safetensors"
    shutil.copy(tiny_lora / "pytorch_lora_weights.safetensors", lora)
    flags = [*prompts, *model_flags(tiny_model), *SMALL, "--lora", str(lora)]
    assert run_cli(*flags) == 0
    png = next((workdir / "images").rglob("*.png"))
    document = read_recipe(png)
    data = lora.read_bytes()
    assert document["recipe"]["lora_sha256"] == hashlib.sha256(data).hexdigest()
    # A1111 names a LoRA by the first 12 hex digits of the sha256 of its tensor data (past the safetensors header).
    tensors_sha256 = hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()
    assert f'Lora hashes: "style: {tensors_sha256[:12]}"' in document["parameters"]
    assert document["parameters"].splitlines()[0].endswith(" <lora:style:1>")

    save_file({name: tensor * 2 for name, tensor in load_file(lora).items()}, lora)  # other weights, same path
    capsys.readouterr()
    assert run_cli(*flags) == 2
    err = capsys.readouterr().err
    assert "holds images made with another recipe" in err and "lora_sha256: " in err
    assert run_cli("regenerate", str(png)) == 2
    err = capsys.readouterr().err
    assert f"was made from {lora} with sha256 {hashlib.sha256(data).hexdigest()}" in err and "the LoRA changed" in err
