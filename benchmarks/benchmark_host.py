"""What machine a benchmark ran on, for its printed header (CPUs differ between machines: say which)."""

import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The vector extensions that decide CPU speed here (AVX2/FMA, AVX-512, its bfloat16, AMX), as a short list."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    return ", ".join(flag for flag in wanted if f" {flag}" in flags) or "none of AVX2, AVX-512, AMX"
