"""Every setting is declared once (settings.py): the CLI flags, --help, the README table, the recipe and the
settings `regenerate` rebuilds from a recipe all come from that declaration, so they cannot drift apart."""

import dataclasses
import re
from pathlib import Path

import pytest

from music2image.cli import build_parser, generate_flags_table
from music2image.recipe import recipe_of, settings_from_recipe
from music2image.settings import GenerationSettings, declared_settings, flag_of

README = Path(__file__).resolve().parents[1] / "README.md"

# A value other than the default for every setting in the recipe (and what makes it apply).
NON_DEFAULTS = {
    "model": "org/other-model", "vae": "org/other-vae", "refiner_model": "org/other-refiner",
    "refiner_switch": 0.7, "width": 512, "height": 640, "steps": 12, "scheduler": "ddim",
    "timestep_spacing": "trailing", "guidance_scale": 7.5, "negative_prompt": "blurry", "dtype": "bfloat16",
    "seed": 1234, "seed_scope": "sample", "truncate_prompts": True, "image_format": "webp", "compile": True, "lora": "org/a-lora",
    "lora_scale": 0.5,
}


def _readme_generate_table() -> str:
    text = README.read_text()
    start = text.index("### `generate` flags\n\n") + len("### `generate` flags\n\n")
    return text[start:text.index("\n\n###", start)]


def test_the_readme_flag_table_is_the_one_the_declarations_make():
    # If this fails after changing a setting: paste the output of
    # python -c "from music2image.cli import generate_flags_table; print(generate_flags_table())"
    assert _readme_generate_table() == generate_flags_table()


def test_help_and_the_readme_table_list_the_same_flags(capsys):
    readme_flags = re.findall(r"^\| `(--[a-z0-9-]+)`", _readme_generate_table(), flags=re.M)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    help_flags = set(re.findall(r"(?<![\w-])(--[a-z0-9-]+)", capsys.readouterr().out)) - {"--help"}
    assert set(readme_flags) == help_flags
    assert {flag_of(name) for name in declared_settings()} <= help_flags


def test_every_declared_setting_is_a_flag_whose_default_is_the_settings_default():
    args = build_parser().parse_args(["generate"])
    defaults = GenerationSettings()
    for name in declared_settings():
        assert getattr(args, name) == getattr(defaults, name), name


def test_recipe_round_trip_for_every_recipe_field():
    recipe_fields = [name for name, declared in declared_settings().items() if declared.recipe]
    # model_config / refiner_model_config only apply to single-file checkpoints (tested in test_single_file.py).
    assert set(recipe_fields) - set(NON_DEFAULTS) == {"model_config", "refiner_model_config"}
    settings = GenerationSettings(refiner=True, **NON_DEFAULTS)
    recipe = recipe_of(settings, settings.dtype)
    rebuilt = settings_from_recipe(recipe)
    for name in NON_DEFAULTS:
        assert getattr(rebuilt, name) == getattr(settings, name), name
    assert rebuilt.refiner is True
    assert recipe_of(rebuilt, rebuilt.dtype) == recipe


def test_settings_that_are_off_stay_out_of_the_recipe_and_come_back_as_defaults():
    settings = GenerationSettings()
    recipe = recipe_of(settings, "float32")
    assert recipe["refiner_model"] is None and recipe["refiner_switch"] is None  # the seed's recipes said null
    assert "compile" not in recipe and "seed_scope" not in recipe and "lora" not in recipe and "lora_scale" not in recipe
    rebuilt = settings_from_recipe(recipe)
    assert dataclasses.replace(rebuilt, dtype="auto") == settings


def test_runtime_settings_are_not_in_the_recipe():
    runtime = {name for name, declared in declared_settings().items() if not declared.recipe}
    # (--images-per-prompt decides how many images, not any image's pixels: adding k = 4..7 keeps k = 0..3.)
    assert runtime == {"refiner", "images_per_prompt", "device", "batch_size", "offload", "vae_tiling"}
    recipe = recipe_of(GenerationSettings(device="cpu", batch_size=4, offload="none", vae_tiling=True), "float32")
    assert recipe == recipe_of(GenerationSettings(), "float32")
