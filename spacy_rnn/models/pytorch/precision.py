"""Whether a device multiplies bfloat16 matrices natively, for bf16_training.

On a CPU, torch's bfloat16 products (oneDNN) are fast only with the
AVX512-BF16 or AMX-BF16 instructions (cpu.py reads the CPU's flags);
elsewhere they are emulated and slower than float32. A CUDA device counts as
native when torch.cuda.is_bf16_supported() says so."""
import torch

from .cpu import cpu_flags

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16_products(device: torch.device) -> bool:
    """Whether bfloat16 matrix products on this device run natively (see the module docstring)."""
    if device.type == "cpu":
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    if device.type == "cuda":
        # emulated bfloat16 (pre-Ampere GPUs, e.g. T4, V100) is slower, not faster: native only
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return False
