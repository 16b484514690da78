"""Everything diffusers: device and dtype (device.py), loading pipelines (load.py), and the engine that turns
(prompt, seed) requests into pixels (generate.py). The engine knows nothing about files."""

from .device import available_device, cpu_native_bfloat16, dtype_reason, memory_mode, resolved_dtype_name
from .generate import BLACK_IMAGE_MAX, Engine, ImageOutcome, ImageRequest, StopRequested
from .load import make_scheduler, quiet_libraries

__all__ = ["BLACK_IMAGE_MAX", "Engine", "ImageOutcome", "ImageRequest", "StopRequested", "available_device", "cpu_native_bfloat16", "dtype_reason",
           "make_scheduler", "memory_mode", "quiet_libraries", "resolved_dtype_name"]
