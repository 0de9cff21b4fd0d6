"""int8 weights for CPU prediction, in one place: torch's dynamic quantization
of nn.Linear layers with one scale per output row (per channel) and qint8
weights, activations quantized on each call. A layer that holds both
directions' weights of a part needs per-row scales: their ranges differ.

torch 2.13 deprecates torch.ao.quantization's quantized tensors and warns
when they are made. spacy-rnn pins that torch, and torchao, the maintained
successor, ran the same layers slower on the CPU here, eager or compiled
(README: "Which int8 library"), so the warning says nothing a user can act
on: these calls silence it (by category, and for the UserWarning by the
module that raises it, torch.ao's), and only around torch.ao's calls.

Which kernels: torch packs an int8 weight for the quantized engine current
when it is packed (quantizing, loading, unpickling or copying the module),
and the product then runs that engine's kernel whatever the engine is later.
torch's default on x86, "x86", packs for FBGEMM. oneDNN's kernels use the
CPU's AMX-INT8 tile instructions where it has them, and ran the tagger's
layer products 1.4-2 times as fast as FBGEMM's on such a CPU here; with
oneDNN capped below AMX (AVX512-VNNI, AVX512, AVX2) they were as fast or
slower (README, "Which int8 kernels"). So spacy-rnn packs its int8
weights for oneDNN where the CPU has AMX-INT8 (int8_engine), and only while
it packs them (packing): the process's engine, which other quantized
models read, is put back after. The engine is one setting for the whole
process, so spacy-rnn's packing holds a lock while it has it switched: two
threads of spacy-rnn's (two components' first predictions, a load beside
them) pack one after the other. Code outside spacy-rnn that sets the engine
or packs int8 weights in another thread during that window sees oneDNN."""
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .cpu import cpu_flags

# CPU flags for which spacy-rnn packs int8 weights for oneDNN (see the module docstring).
INT8_CPU_FLAGS = ("amx_int8",)
# The environment variable naming the engine to pack for instead (int8_engine).
ENGINE_VAR = "SPACY_RNN_INT8_ENGINE"

QCONFIG = torch.ao.quantization.per_channel_dynamic_qconfig


@contextmanager
def _torch_ao() -> Iterator[None]:
    """Inside (torch.ao calls only): torch.ao's deprecation warnings are not shown, the
    DeprecationWarning of its entry points and the UserWarning of its quantized tensors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\.")
        yield


def int8_engine() -> str:
    """The quantized engine spacy-rnn packs int8 weights for: the one the environment
    variable SPACY_RNN_INT8_ENGINE names if set (e.g. "fbgemm" for FBGEMM's kernels on
    every CPU, the same numbers as elsewhere), else oneDNN where the CPU has AMX-INT8
    and torch offers oneDNN, else the process's current one."""
    chosen = os.environ.get(ENGINE_VAR, "").strip()
    if chosen:
        offered = [name for name in torch.backends.quantized.supported_engines if name != "none"]
        if chosen not in offered:
            raise ValueError(f"{ENGINE_VAR}={chosen!r} is not a quantized engine of this torch; choose from {', '.join(offered)}")
        return chosen
    if "onednn" in torch.backends.quantized.supported_engines and any(flag in cpu_flags() for flag in INT8_CPU_FLAGS):
        return "onednn"
    return torch.backends.quantized.engine


# Held while spacy-rnn has the process's quantized engine switched (packing).
_ENGINE_LOCK = threading.RLock()


@contextmanager
def packing() -> Iterator[None]:
    """Inside: int8 weights packed (quantize_dynamic, a quantized module's state
    loaded, unpickled or deep-copied) are packed for int8_engine(); the
    process's engine is put back on the way out. One thread at a time (a lock:
    the engine is process-wide, and another thread's way out would otherwise
    put the engine back while this one packs)."""
    with _ENGINE_LOCK:
        previous = torch.backends.quantized.engine
        engine = int8_engine()
        if engine == previous:
            yield
            return
        torch.backends.quantized.engine = engine
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous


@contextmanager
def int8_loading() -> Iterator[None]:
    """Inside (loading or copying torch modules: torch.load, a shim's from_bytes
    or copy): int8 weights are packed as `packing` says, and torch's deprecation
    warnings about rebuilding int8 tensors and typed storages, which torch raises
    from torch._utils for every int8 weight it reads, are not shown."""
    with warnings.catch_warnings(), packing():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._utils")
        yield


def quantize_linears(module: nn.Module) -> None:
    """Replace every nn.Linear inside module by its int8 counterpart, in place."""
    with _torch_ao(), packing():
        torch.ao.quantization.quantize_dynamic(module, {nn.Linear: QCONFIG}, dtype=torch.qint8, inplace=True)


def int8_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A dynamically quantized Linear computing x @ weight.T + bias, quantized as quantize_linears does."""
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    linear.qconfig = QCONFIG
    with _torch_ao(), packing():
        return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)
