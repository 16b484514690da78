"""Which device and dtype a run uses, and whether the pipeline fits the GPU (decided before anything loads)."""

from __future__ import annotations

from ..errors import SettingsError
from ..settings import GenerationSettings


def available_device(requested: str) -> str:
    """auto → cuda, else mps, else cpu. An explicit device that is absent is an error, never a quiet fallback."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"--device {requested}: no CUDA GPU is visible to PyTorch (torch {torch.__version__})")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise SettingsError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SettingsError("--device mps: Apple MPS is not available on this machine")
    return requested


def resolved_dtype_name(dtype: str, device: str, offload: str = "none") -> str:
    """auto → float16 on CUDA, float32 elsewhere (MPS float16 SDXL decodes are unreliable). Also refuses the
    device-dependent combinations that would only fail after minutes of loading."""
    if offload not in ("none", "auto") and not device.startswith("cuda"):
        raise SettingsError(f"--offload {offload}: offloading moves weights between CPU and a GPU; it needs --device cuda")
    if dtype != "auto":
        if dtype == "float16" and device == "cpu":
            raise SettingsError("--dtype float16 on cpu: PyTorch's CPU kernels are slow or missing in float16; use float32 or bfloat16")
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


# SDXL base weights in half precision: UNet 5.1 GB + text encoders 1.6 GB + VAE 0.2 GB; the refiner adds ~4.5 GB.
# With ~3 GB of working memory for a 1024² batch of one, a GPU below this cannot hold everything at once.
BASE_RESIDENT_BYTES = 10e9
REFINER_EXTRA_BYTES = 4.5e9


def memory_mode(settings: GenerationSettings, device: str, dtype_name: str, total_bytes: int | None) -> tuple[str, bool, str | None]:
    """(offload, vae_tiling, why) for this run. `--offload auto` turns on model offload and VAE tiling only when
    the GPU is too small for the whole pipeline; anything the user chose explicitly is kept as is."""
    if settings.offload != "auto":
        return settings.offload, settings.vae_tiling, None
    if not device.startswith("cuda") or total_bytes is None:
        return "none", settings.vae_tiling, None
    need = (BASE_RESIDENT_BYTES + (REFINER_EXTRA_BYTES if settings.refiner else 0)) * (2 if dtype_name == "float32" else 1)
    if total_bytes >= need:
        return "none", settings.vae_tiling, None
    why = (f"the GPU has {total_bytes / 2**30:.1f} GiB, less than the ~{need / 2**30:.0f} GiB this pipeline needs at "
           f"once: using model offload and VAE tiling (slower; --offload none to keep everything on the GPU)")
    return "model", True, why



def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


