"""What the CPU's instruction set offers, for choices that depend on it
(bfloat16 products in training, the int8 kernels' engine).

torch has no public query for these instructions, so on Linux the CPU's
flags are read from /proc/cpuinfo (the kernel's list of what the processor
supports); on other systems a CPU counts as having none of them."""
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _first_processor(field: str) -> str:
    """The value of a field of the first processor in /proc/cpuinfo ("" where there is no such file or field)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.partition(":")[0].strip() == field:
            return line.partition(":")[2].strip()
    return ""


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The flags of the first processor in /proc/cpuinfo (empty where there is no such file)."""
    return frozenset(_first_processor("flags").split())


def cpu_model() -> str:
    """The first processor's model name in /proc/cpuinfo ("" where there is none): benchmarks
    record it, since speed ratios differ from one kind of CPU to another."""
    return _first_processor("model name")
