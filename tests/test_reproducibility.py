"""Same inputs → same bytes; our images equal a plain diffusers call; seeds do not depend on selection or batch."""

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import SMALL, model_flags, prompts_doc, read_json, run_cli
from PIL import Image

from music2image.engine import Engine, ImageRequest
from music2image.plan import image_seed
from music2image.settings import GenerationSettings


def _pngs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_same_command_twice_gives_byte_identical_pngs(prompts_file, tiny_model, workdir):
    for out in ("run_a", "run_b"):
        assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--output-dir", out, "--limit", "4") == 0
    first, second = _pngs(workdir / "run_a"), _pngs(workdir / "run_b")
    assert len(first) == 4 and first == second
    # Different images really differ (the check above is not trivially true).
    assert len({hashlib.sha256(b).hexdigest() for b in first.values()}) == 4


def test_image_does_not_depend_on_limit_order_or_batch(workdir, tiny_model):
    # The README's batch tolerance is float32's (bfloat16/float16 batches round differently: see the README).
    small_f32 = [*SMALL, "--dtype", "float32"]
    doc = prompts_doc(samples=2)
    (workdir / "p.json").write_text(json.dumps(doc))
    doc["samples"].reverse()
    for sample in doc["samples"]:
        sample["prompts"].reverse()
    (workdir / "reversed.json").write_text(json.dumps(doc))
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *small_f32, "--output-dir", "all") == 0
    assert run_cli("generate", "--prompts-file", "reversed.json", *model_flags(tiny_model), *small_f32,
                   "--output-dir", "rev") == 0
    assert run_cli("generate", "--prompts-file", "reversed.json", *model_flags(tiny_model), *small_f32,
                   "--output-dir", "batched", "--batch-size", "3") == 0
    assert run_cli("generate", "--prompts-file", "p.json", *model_flags(tiny_model), *small_f32,
                   "--output-dir", "one", "--sample-range", "1:2", "--limit", "1") == 0
    everything, reordered, single = _pngs(workdir / "all"), _pngs(workdir / "rev"), _pngs(workdir / "one")
    assert everything == reordered
    # In another batch the float sums run in another order: equal within 1e-5 (test below), so after rounding
    # to 8 bits a pixel value may differ by one. Same batch size and order → same bytes (first test).
    for path, data in _pngs(workdir / "batched").items():
        difference = np.abs(np.asarray(Image.open(workdir / "batched" / path), dtype=int)
                            - np.asarray(Image.open(workdir / "all" / path), dtype=int))
        assert difference.max() <= 1
    assert single == {"sample_001/sample_001_prompt_00.png": everything["sample_001/sample_001_prompt_00.png"]}
    seeds = {(e["sample_idx"], e["prompt_id"]): e["seed"] for e in read_json(workdir / "all" / "image_generation_log.json")["generated_images"]}
    assert seeds[(1, 0)] == image_seed(0, 1, 0) and len(set(seeds.values())) == len(seeds)


def test_other_base_seed_gives_other_images(prompts_file, tiny_model, workdir):
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1", "--output-dir", "s0") == 0
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "1", "--output-dir", "s1", "--seed", "1") == 0
    assert _pngs(workdir / "s0") != _pngs(workdir / "s1")


@pytest.mark.parametrize("scheduler", ["euler", "euler-a", "dpm++2m-karras", "ddim"])
def test_equals_a_plain_diffusers_call_with_the_recorded_seed(scheduler, prompts_file, tiny_model, workdir):
    from diffusers import StableDiffusionXLPipeline

    # The plain pipeline computes in float32: compare like with like (auto is bfloat16 on a CPU with native bf16).
    assert run_cli("generate", *model_flags(tiny_model), *SMALL, "--limit", "2", "--scheduler", scheduler,
                   "--dtype", "float32") == 0
    entry = read_json(workdir / "images" / "image_generation_log.json")["generated_images"][1]
    ours = np.asarray(Image.open(workdir / "images" / entry["image_path"]))

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_model / "base"), use_safetensors=True)
    engine_settings = GenerationSettings(model=str(tiny_model / "base"), scheduler=scheduler, dtype="float32")
    from music2image.engine import make_scheduler

    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config, None)
    plain = pipe(entry["visual_prompt"], width=64, height=64, num_inference_steps=2, guidance_scale=5.0,
                 generator=torch.Generator("cpu").manual_seed(entry["seed"]), output_type="np").images[0]
    assert np.array_equal(ours, (plain * 255).round().astype("uint8"))

    engine = Engine.load(engine_settings.replace(width=64, height=64, steps=2), device="cpu")
    outcome = engine.generate([ImageRequest(entry["visual_prompt"], entry["seed"])], keep_float=True)[0]
    assert np.abs(outcome.float_pixels - plain).max() <= 1e-6


def test_a_batch_of_four_equals_four_singles(tiny_model):
    # The README's 1e-5 is float32's: in bfloat16 a batch's other summation order rounds at 8 bits of mantissa.
    settings = GenerationSettings(model=str(tiny_model / "base"), width=64, height=64, steps=3, dtype="float32")
    engine = Engine.load(settings, device="cpu")
    requests = [ImageRequest(f"prompt number {i}, golden light", image_seed(0, 0, i)) for i in range(4)]
    batched = engine.generate(requests, keep_float=True)
    singles = [engine.generate([r], keep_float=True)[0] for r in requests]
    for together, alone in zip(batched, singles):
        assert np.abs(together.float_pixels - alone.float_pixels).max() <= 1e-5


def test_tiny_model_build_is_deterministic(tmp_path, tiny_model):
    from music2image.tiny import make_tiny_model

    make_tiny_model(tmp_path / "again")

    def digests(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digests(tmp_path / "again") == digests(tiny_model)
