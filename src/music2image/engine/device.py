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
    """auto → float16 on CUDA; on a CPU bfloat16 where it has native bfloat16 arithmetic, else float32; float32 on
    MPS (its float16 SDXL decodes are unreliable). Also refuses the device-dependent combinations that would only
    fail after minutes of loading."""
    if offload not in ("none", "auto") and not device.startswith("cuda"):
        raise SettingsError(f"--offload {offload}: offloading moves weights between CPU and a GPU; it needs --device cuda")
    if dtype != "auto":
        if dtype == "float16" and device == "cpu":
            raise SettingsError("--dtype float16 on cpu: PyTorch's CPU kernels are slow or missing in float16; use float32 or bfloat16")
        return dtype
    if device.startswith("cuda"):
        return "float16"
    return "bfloat16" if device == "cpu" and cpu_native_bfloat16()[0] else "float32"


def cpu_native_bfloat16() -> tuple[bool, str]:
    """(has it, what PyTorch says): whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX tiles),
    asked of PyTorch's own CPU feature checks, never guessed from the CPU's name. With them bfloat16 ran the
    full-size SDXL 2.5x faster than float32 (issue 15, a 2-core EPYC with AVX-512 BF16; docs/PERFORMANCE.md);
    without them bfloat16 has no native path, so float32 stays the choice."""
    import torch

    features = {
        "AVX-512 BF16": getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)(),
        "AMX": getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)(),
    }
    found = [name for name, present in features.items() if present]
    capability = torch.backends.cpu.get_cpu_capability()
    if found:
        return True, f"PyTorch reports {' and '.join(found)} (kernels: {capability})"
    return False, f"PyTorch reports no AVX-512 BF16 or AMX (kernels: {capability})"


def dtype_reason(dtype: str, device: str) -> str:
    """Why the run computes in the dtype it does: for the log and the run's metadata."""
    if dtype != "auto":
        return f"--dtype {dtype}"
    if device == "cpu":
        native, said = cpu_native_bfloat16()
        if native:
            return f"auto: bfloat16, this CPU has native bfloat16 ({said}); --dtype float32 for float32"
        return f"auto: float32, this CPU has no native bfloat16 ({said}); --dtype bfloat16 to try it anyway"
    if device.startswith("cuda"):
        return "auto: float16 on CUDA"
    return f"auto: float32 on {device}"


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


