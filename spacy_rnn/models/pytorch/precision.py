"""Whether a device multiplies bfloat16 matrices natively, for bf16_training.

On a CPU, torch's bfloat16 products (oneDNN) are fast only with the
AVX512-BF16 or AMX-BF16 instructions; elsewhere they are emulated and slower
than float32. torch has no public query for these instructions, so on Linux
the CPU's flags are read from /proc/cpuinfo (the kernel's list of what the
processor supports); on other systems a CPU counts as without them. A CUDA
device counts as native when torch.cuda.is_bf16_supported() says so."""
from functools import lru_cache
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The flags of the first processor in /proc/cpuinfo (empty where there is no such file)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16_products(device: torch.device) -> bool:
    """Whether bfloat16 matrix products on this device run natively (see the module docstring)."""
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    if device.type == "cuda":
        # emulated bfloat16 (pre-Ampere GPUs, e.g. T4, V100) is slower, not faster: native only
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return False
