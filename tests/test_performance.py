"""Speed features, as behaviour on the tiny model (their figures live in benchmarks/ and docs/PERFORMANCE.md):
overlapped saving, batch size choice and padding, precision, compile, VAE tiling."""

import threading
import time

import numpy as np
import pytest
from conftest import SMALL, model_flags, read_json, run_cli
from PIL import Image

from music2image.engine import Engine, resolved_dtype_name
from music2image.outputs import Files


def _pixels(folder):
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
            for p in sorted(folder.rglob("*.png"))}


def test_saving_runs_on_a_background_writer_while_the_next_batch_generates(ten_prompts, tiny_model, workdir,
                                                                             monkeypatch):
    events = []
    real_generate = Engine.generate

    class SlowDisk(Files):
        def write_atomic(self, path, data):
            if not str(path).endswith(".png"):
                return super().write_atomic(path, data)
            start = time.monotonic()
            time.sleep(0.3)  # a slow disk
            super().write_atomic(path, data)
            events.append(("save", threading.current_thread().name, start, time.monotonic()))

    def timed_generate(self, requests, *args, **kwargs):
        start = time.monotonic()
        outcomes = real_generate(self, requests, *args, **kwargs)
        events.append(("generate", threading.current_thread().name, start, time.monotonic()))
        return outcomes

    monkeypatch.setattr(Engine, "generate", timed_generate)
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--batch-size", "2", "--quiet",
                   files=SlowDisk()) == 0

    saves = [e for e in events if e[0] == "save"]
    generates = [e for e in events if e[0] == "generate"]
    assert len(saves) == 10 and len(generates) == 5
    assert {e[1] for e in saves} == {"music2image-writer_0"}  # never on the main (generating) thread
    assert {e[1] for e in generates} == {"MainThread"}
    # Some batch was generated while an earlier image was still being written: the GPU does not wait for the disk.
    assert any(g[2] < s[3] and s[2] < g[2] for g in generates for s in saves)
    assert read_json(workdir / "images" / "image_generation_log.json")["metadata"]["successful"] == 10


def test_auto_batch_size_is_one_on_cpu_and_recorded(ten_prompts, tiny_model, workdir):
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "2", "--quiet") == 0
    meta = read_json(workdir / "images" / "image_generation_log.json")["metadata"]
    assert meta["batch_size"] == 1 and meta["dtype"] == meta["vae_decode_dtype"] == resolved_dtype_name("auto", "cpu")
    assert meta["dtype_reason"].startswith(f"auto: {meta['dtype']}, this CPU has")
    assert meta["offload"] == "none" and meta["vae_tiling"] is False and meta["compile"] is False


def test_bfloat16_runs_on_cpu_and_the_log_says_what_ran(ten_prompts, tiny_model, workdir):
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--dtype", "bfloat16", "--limit", "3",
                   "--quiet") == 0
    meta = read_json(workdir / "images" / "image_generation_log.json")["metadata"]
    assert meta["dtype"] == "bfloat16" and meta["vae_decode_dtype"] == "bfloat16" and meta["successful"] == 3
    # Lower precision, same picture: close to the float32 images, not equal to them.
    bf16 = _pixels(workdir / "images")
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "3", "--output-dir", "f32",
                   "--dtype", "float32", "--quiet") == 0
    f32 = _pixels(workdir / "f32")
    assert bf16.keys() == f32.keys()
    differences = [np.abs(bf16[k] - f32[k]).mean() for k in bf16]
    assert max(differences) < 20 and any(d > 0 for d in differences)


def test_vae_tiling_decodes_in_tiles_and_says_so(ten_prompts, tiny_model, workdir, monkeypatch):
    from diffusers import AutoencoderKL

    tiled = []
    real = AutoencoderKL.tiled_decode

    def spy(self, *args, **kwargs):
        tiled.append(args[0].shape)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "tiled_decode", spy)
    # 256 px is larger than the tiny VAE's tile (its sample_size), so tiling really cuts the latents.
    assert run_cli(*ten_prompts, *model_flags(tiny_model), "--width", "256", "--height", "256", "--steps", "1",
                   "--vae-tiling", "--limit", "1", "--quiet") == 0
    assert tiled, "the VAE never decoded in tiles"
    assert read_json(workdir / "images" / "image_generation_log.json")["metadata"]["vae_tiling"] is True


@pytest.mark.slow
def test_compile_pads_the_last_batch_reports_compile_time_and_matches_eager(ten_prompts, tiny_model, workdir,
                                                                             monkeypatch, capsys):
    shapes = []
    real = Engine.generate

    def spy(self, requests, *args, **kwargs):
        shapes.append(len(requests))
        return real(self, requests, *args, **kwargs)

    monkeypatch.setattr(Engine, "generate", spy)
    # float32, as when the tolerance below was set (auto is bfloat16 on a CPU with native bf16).
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--batch-size", "2", "--limit", "3", "--quiet",
             "--dtype", "float32"]
    assert run_cli(*flags, "--compile") == 0
    assert "--compile on a CPU: compiling takes minutes" in capsys.readouterr().err  # warned, with its cost
    # A compiled graph has a fixed batch shape: the warm-up and every batch, the last (1 image) padded, hold 2.
    assert shapes == [2, 2, 2]
    meta = read_json(workdir / "images" / "image_generation_log.json")["metadata"]
    assert meta["compile"] is True and meta["compile_seconds"] > 0 and meta["successful"] == 3
    assert len(list((workdir / "images").rglob("*.png"))) == 3  # the padding was not saved
    compiled = _pixels(workdir / "images")
    assert run_cli(*flags, "--output-dir", "eager") == 0
    eager = _pixels(workdir / "eager")
    assert compiled.keys() == eager.keys()
    assert max(np.abs(compiled[k] - eager[k]).max() for k in compiled) <= 2  # fused kernels, same picture


def test_compile_is_part_of_the_recipe(ten_prompts, tiny_model, workdir):
    flags = [*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "1", "--quiet"]
    assert run_cli(*flags) == 0
    assert run_cli(*flags, "--compile") == 2  # the folder holds eager images: refused, not mixed


@pytest.mark.parametrize("offload, device, gib, refiner, expected", [
    ("auto", "cpu", None, False, ("none", False)),
    ("auto", "cuda", 80, False, ("none", False)),  # an H100 holds everything
    ("auto", "cuda", 24, True, ("none", False)),  # base + refiner fit in 24 GiB
    ("auto", "cuda", 8, False, ("model", True)),  # an 8 GiB card: offload and tiling, said on screen
    ("auto", "cuda", 12, True, ("model", True)),  # 12 GiB is enough for the base, not base + refiner
    ("none", "cuda", 8, False, ("none", False)),  # an explicit choice is kept
    ("sequential", "cuda", 80, False, ("sequential", False)),
])
def test_memory_mode_is_chosen_automatically_only_for_small_gpus(offload, device, gib, refiner, expected):
    from music2image.engine import memory_mode
    from music2image.settings import GenerationSettings

    settings = GenerationSettings(offload=offload, refiner=refiner)
    chosen_offload, tiling, why = memory_mode(settings, device, "float16", None if gib is None else gib * 2**30)
    assert (chosen_offload, tiling) == expected
    assert (why is not None) == (offload == "auto" and expected[0] == "model")
    if why:
        assert f"{gib:.1f} GiB" in why and "--offload none" in why


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, True, "bfloat16"), (False, True, "bfloat16"),
                                                        (True, False, "bfloat16"), (False, False, "float32")])
def test_auto_dtype_on_cpu_follows_what_pytorch_says_of_the_cpu(avx512_bf16, amx, expected, monkeypatch):
    import torch

    from music2image.engine import dtype_reason

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolved_dtype_name("auto", "cpu") == expected
    assert dtype_reason("auto", "cpu").startswith(f"auto: {expected}, this CPU has")
    assert resolved_dtype_name("float32", "cpu") == "float32" and dtype_reason("float32", "cpu") == "--dtype float32"
    assert resolved_dtype_name("auto", "mps") == "float32"


def test_this_cpu_gets_bfloat16_by_default_exactly_when_pytorch_sees_native_bfloat16():
    import torch

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert resolved_dtype_name("auto", "cpu") == ("bfloat16" if native else "float32")


def test_resume_made_in_another_dtype_is_refused_naming_the_flag_to_pass(ten_prompts, tiny_model, workdir, capsys):
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "1", "--dtype", "float32",
                   "--quiet") == 0
    capsys.readouterr()
    other = "bfloat16" if resolved_dtype_name("auto", "cpu") == "float32" else "auto"
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "1", "--dtype", other) == 2
    message = capsys.readouterr().err
    assert 'dtype: "float32" there, "bfloat16" now' in message and "add --dtype float32 to resume" in message
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "1", "--dtype", "float32",
                   "--quiet") == 0
    assert "dtype float32 (--dtype float32)" in (workdir / "images" / "generate_images.log").read_text()
