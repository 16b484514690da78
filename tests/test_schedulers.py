"""Few-step schedulers (--scheduler lcm / tcd): the scheduler diffusers trained LCM-LoRA, TCD and Hyper-SD with."""

import numpy as np
import pytest
import torch
from conftest import SMALL, model_flags, read_json, run_cli
from PIL import Image

from music2image.outputs import read_image_text


@pytest.mark.parametrize("scheduler, scheduler_class, sampler", [("lcm", "LCMScheduler", "LCM"),
                                                                  ("tcd", "TCDScheduler", "TCD")])
def test_few_step_scheduler_equals_a_plain_diffusers_call_with_that_scheduler(scheduler, scheduler_class, sampler,
                                                                               prompts_file, tiny_model, workdir):
    import diffusers
    from diffusers import StableDiffusionXLPipeline

    # The README's recipe shape: few steps, guidance 1 (LCM-LoRA's card: "disable guidance_scale or use 1.0-2.0").
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "2", "--scheduler", scheduler,
                   "--guidance-scale", "1", "--dtype", "float32") == 0
    entry = read_json(workdir / "images" / "image_generation_log.json")["generated_images"][1]
    ours = np.asarray(Image.open(workdir / "images" / entry["image_path"]))

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model / "base"), use_safetensors=True)
    pipe.scheduler = getattr(diffusers, scheduler_class).from_config(pipe.scheduler.config)
    plain = pipe(entry["visual_prompt"], width=64, height=64, num_inference_steps=2, guidance_scale=1.0,
                 generator=torch.Generator("cpu").manual_seed(entry["seed"]), output_type="np").images[0]
    assert np.array_equal(ours, (plain * 255).round().astype("uint8"))
    # The scheduler really changes the image (the comparison above is not euler against euler).
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "2", "--guidance-scale", "1",
                   "--dtype", "float32", "--output-dir", "euler") == 0
    assert not np.array_equal(ours, np.asarray(Image.open(workdir / "euler" / entry["image_path"])))
    assert f"Sampler: {sampler}," in read_image_text(workdir / "images" / entry["image_path"])["parameters"]


def test_timestep_spacing_with_a_self_spaced_scheduler_is_refused(prompts_file, tiny_model, workdir, capsys):
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--scheduler", "lcm",
                   "--timestep-spacing", "trailing") == 2
    assert "--timestep-spacing trailing with --scheduler lcm" in capsys.readouterr().err
    assert not (workdir / "images").exists()
