"""Per-image recovery: one failure stays one failure; OOM halves the batch; NaN/black decodes are retried; a full
disk stops cleanly. Faults are injected at the engine's boundary with diffusers (the real pipelines still run)."""

import errno

import pytest
import torch
from conftest import SMALL, model_flags, read_json, run_cli
from diffusers import AutoencoderKL

from music2image import engine as engine_module
from music2image.journal import JOURNAL_NAME, Journal
from music2image.outputs import Files


def _log(workdir):
    return read_json(workdir / "images" / "image_generation_log.json")


def test_an_exception_for_one_prompt_is_recorded_and_the_run_goes_on(ten_prompts, tiny_model, workdir, monkeypatch):
    real = engine_module.Engine.run_batch

    def failing(self, requests, call):
        if any("1-2" in r.prompt for r in requests):
            raise RuntimeError("boom for this prompt")
        return real(self, requests, call)

    monkeypatch.setattr(engine_module.Engine, "run_batch", failing)
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--batch-size", "4") == 1
    log = _log(workdir)
    failed = [e for e in log["generated_images"] if e["status"] == "failed"]
    assert [(e["sample_idx"], e["prompt_id"], e["error_type"], e["error"]) for e in failed] == [
        (1, 2, "RuntimeError", "boom for this prompt")]
    assert failed[0]["image_path"] is None
    assert not (workdir / "images" / "sample_001" / "sample_001_prompt_02.png").exists()
    assert log["metadata"]["successful"] == 9 and log["metadata"]["failed"] == 1
    summary = read_json(workdir / "images" / "image_generation_summary.json")
    assert summary["success_rate"] == 90.0 and summary["by_sample"]["1"]["failed"] == 1
    assert summary["failures"] == [{"sample_idx": 1, "prompt_id": 2, "error": "boom for this prompt"}]
    # The failed image is retried by the next run, the others are kept.
    monkeypatch.setattr(engine_module.Engine, "run_batch", real)
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL) == 0
    records = [r for r in Journal.read(workdir / "images" / JOURNAL_NAME) if r.get("type") == "image"]
    assert len(records) == 11 and (records[-1]["sample_idx"], records[-1]["prompt_id"]) == (1, 2)


@pytest.mark.slow
def test_cuda_oom_halves_the_batch_then_falls_back_to_low_memory(ten_prompts, tiny_model, workdir, monkeypatch, capsys):
    real = engine_module.Engine.run_batch
    sizes = []

    def oom_above_one(self, requests, call):
        sizes.append(len(requests))
        if len(requests) > 1 or (requests[0].prompt.endswith("0-0") and not self.memory_notes):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, requests, call)

    monkeypatch.setattr(engine_module.Engine, "run_batch", oom_above_one)
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--batch-size", "4") == 0
    assert sizes[:4] == [4, 2, 1, 1]  # halve, halve, then one image needs the low-memory fallback once
    err = capsys.readouterr().err
    assert "CUDA out of memory with a batch of 4: retrying as batches of 2" in err
    assert "turning on VAE tiling and model offload" in err
    assert _log(workdir)["metadata"]["memory_fallbacks"] == ["vae_tiling+model_offload after OOM"]
    # The journal says what was in effect for each image: tiling from the fallback on (CPU: no offload to turn on).
    records = [r for r in Journal.read(workdir / "images" / JOURNAL_NAME) if r.get("type") == "image"]
    assert records[0]["vae_tiling"] is True and records[0]["offload"] == "none"


def test_oom_at_batch_one_after_the_fallback_marks_the_image_failed(ten_prompts, tiny_model, workdir, monkeypatch):
    def always_oom(self, requests, call):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine_module.Engine, "run_batch", always_oom)
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--limit", "2") == 1
    assert [e["error"] for e in _log(workdir)["generated_images"]] == ["CUDA out of memory: CUDA out of memory"] * 2


def _nan_when(condition):
    real = AutoencoderKL.decode

    def decode(self, z, *args, **kwargs):
        output = real(self, z, *args, **kwargs)
        if condition(self):
            sample = output[0] if isinstance(output, tuple) else output.sample
            sample.fill_(float("nan"))
        return output

    return decode


def test_nan_decode_is_retried_in_float32(ten_prompts, tiny_model, workdir, monkeypatch):
    # In bfloat16 the decoder "overflows" (NaN); the float32 retry is clean and saved.
    monkeypatch.setattr(AutoencoderKL, "decode", _nan_when(lambda vae: vae.dtype == torch.bfloat16))
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--dtype", "bfloat16", "--limit", "2") == 0
    entries = _log(workdir)["generated_images"]
    assert [e["status"] for e in entries] == ["success", "success"]
    records = [r for r in Journal.read(workdir / "images" / JOURNAL_NAME) if r.get("type") == "image"]
    assert records[0]["notes"] == ["NaN in the decoded image in bfloat16; decoded again in float32"]


def test_black_image_that_stays_black_is_failed_never_saved(ten_prompts, tiny_model, workdir, monkeypatch):
    real = AutoencoderKL.decode

    def black(self, z, *args, **kwargs):
        output = real(self, z, *args, **kwargs)
        (output[0] if isinstance(output, tuple) else output.sample).fill_(-1.0)  # -1 → pixel value 0
        return output

    monkeypatch.setattr(AutoencoderKL, "decode", black)
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--dtype", "bfloat16", "--limit", "2") == 1
    entries = _log(workdir)["generated_images"]
    assert {(e["status"], e["error"], e["error_type"]) for e in entries} == {("failed", "all-black image", "BadDecode")}
    assert not list((workdir / "images").rglob("*.png"))


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_disk_full_stops_cleanly_and_resumes(code, reason, ten_prompts, tiny_model, workdir, monkeypatch, capsys):
    calls = []

    class FullDisk(Files):
        def write_atomic(self, path, data):
            calls.append(path)
            if len(calls) == 3:
                raise OSError(code, reason)
            return super().write_atomic(path, data)

    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, files=FullDisk()) == 1
    err = capsys.readouterr().err
    assert f"could not write results ({reason})" in err and "run the same command again" in err
    assert "Traceback" not in err
    records = [r for r in Journal.read(workdir / "images" / JOURNAL_NAME) if r.get("type") == "image"]
    assert len(records) == 2  # the journal holds exactly what is on disk
    assert len(list((workdir / "images").rglob("*.png"))) == 2
    assert not list((workdir / "images").rglob("*.tmp"))
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL) == 0
    assert _log(workdir)["metadata"]["successful"] == 10


def test_an_output_folder_that_cannot_be_created(ten_prompts, tiny_model, workdir, capsys):
    (workdir / "a_file").write_text("x")
    assert run_cli(*ten_prompts, *model_flags(tiny_model), *SMALL, "--output-dir", "a_file/images") == 2
    err = capsys.readouterr().err
    assert "a_file/images: cannot create the output folder" in err and "Traceback" not in err
