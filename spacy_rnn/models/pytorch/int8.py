"""int8 weights for CPU prediction, in one place: torch's dynamic quantization
of nn.Linear layers with one scale per output row (per channel) and qint8
weights, activations quantized on each call. A layer that holds both
directions' weights of a part needs per-row scales: their ranges differ."""
import torch
from torch import nn

QCONFIG = torch.ao.quantization.per_channel_dynamic_qconfig


def quantize_linears(module: nn.Module) -> None:
    """Replace every nn.Linear inside module by its int8 counterpart, in place."""
    torch.ao.quantization.quantize_dynamic(module, {nn.Linear: QCONFIG}, dtype=torch.qint8, inplace=True)


def int8_linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A dynamically quantized Linear computing x @ weight.T + bias, quantized as quantize_linears does."""
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    linear.qconfig = QCONFIG
    return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)
