"""int8 weights for CPU prediction, in one place: torch's dynamic quantization
of nn.Linear layers with one scale per output row (per channel) and qint8
weights, activations quantized on each call. A layer that holds both
directions' weights of a part needs per-row scales: their ranges differ.

torch 2.13 deprecates torch.ao.quantization's quantized tensors and warns
when they are made. spacy-rnn pins that torch, and torchao, the maintained
successor, ran the same layers slower on the CPU here, eager or compiled
(README: "Which int8 library"), so the warning says nothing a user can act
on: these calls silence it (by category, and for the UserWarning by the
module that raises it, torch.ao's), and only around torch.ao's calls."""
import warnings
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

QCONFIG = torch.ao.quantization.per_channel_dynamic_qconfig


@contextmanager
def _torch_ao() -> Iterator[None]:
    """Inside (torch.ao calls only): torch.ao's deprecation warnings are not shown, the
    DeprecationWarning of its entry points and the UserWarning of its quantized tensors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\.")
        yield


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Inside (loading torch tensors: torch.load, a shim's from_bytes): torch's
    deprecation warnings about rebuilding int8 tensors and typed storages, which
    torch raises from torch._utils for every int8 weight it reads, are not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._utils")
        yield


def quantize_linears(module: nn.Module) -> None:
    """Replace every nn.Linear inside module by its int8 counterpart, in place."""
    with _torch_ao():
        torch.ao.quantization.quantize_dynamic(module, {nn.Linear: QCONFIG}, dtype=torch.qint8, inplace=True)


def int8_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A dynamically quantized Linear computing x @ weight.T + bias, quantized as quantize_linears does."""
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    linear.qconfig = QCONFIG
    with _torch_ao():
        return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)
