"""What the CPU's instruction set offers, for choices that depend on it
(bfloat16 products in training, the int8 kernels' engine).

torch has no public query for these instructions, so on Linux the CPU's
flags are read from /proc/cpuinfo (the kernel's list of what the processor
supports); on other systems a CPU counts as having none of them."""
from functools import lru_cache
from pathlib import Path

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
