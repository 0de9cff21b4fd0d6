"""Thinc ops for spacy-rnn's output layers on the CPU.

Thinc's NumpyOps multiplies matrices with BLIS; on the development machine
(AMD EPYC, one thread) its products for an output layer (tokens x 256 times
256 x tags) took about three times as long as torch's, and the output layer
had become a large share of tagging time once the recurrent stack was fast.
TorchGemmOps is NumpyOps with the matrix product done by torch on the same
memory (no copies), under torch's thread setting (spacy_rnn.runtime). It is
a Thinc `Ops` subclass, the extension point Thinc offers for another BLAS
(as thinc-apple-ops does), and leaves every other operation to NumpyOps.
Int8AffineOps is TorchGemmOps with an output layer's affine map in int8
weights, for quantized pipelines (spacy_rnn.pipeline.quantize).
"""
from typing import Optional, Tuple

import numpy
import torch
from thinc.api import Model, NumpyOps, get_current_ops
from torch import nn

from .pytorch.int8 import int8_linear


def _as_tensor(array: numpy.ndarray) -> torch.Tensor:
    if any(stride < 0 for stride in array.strides):
        array = numpy.ascontiguousarray(array)
    return torch.from_numpy(array)


class TorchGemmOps(NumpyOps):
    """NumpyOps whose gemm is torch's matrix product (float32 and float64)."""

    name = "spacy_rnn_torch_gemm"

    def __init__(self, device_type: str = "cpu", device_id: int = -1, **kwargs) -> None:
        super().__init__(device_type, device_id, use_blis=False)

    def gemm(self, x, y, *, out=None, trans1=False, trans2=False):
        if x.ndim != 2 or y.ndim != 2 or x.dtype != y.dtype or x.dtype not in (numpy.float32, numpy.float64):
            return super().gemm(x, y, out=out, trans1=trans1, trans2=trans2)
        a, b = _as_tensor(x), _as_tensor(y)
        a, b = (a.T if trans1 else a), (b.T if trans2 else b)
        if out is None:
            return torch.matmul(a, b).numpy()
        if out.dtype != x.dtype or not out.flags.c_contiguous:
            out[...] = torch.matmul(a, b).numpy()
            return out
        torch.matmul(a, b, out=torch.from_numpy(out))
        return out


class Int8AffineOps(TorchGemmOps):
    """TorchGemmOps whose affine map, an output layer's X @ W.T + b, runs as
    torch's dynamically quantized Linear: W stored as int8 with one scale per
    output row (as the pipeline's torch modules are quantized), X quantized on
    each call. For prediction (measured with the rest of int8 prediction:
    README, "int8 prediction since commit 9549075"). The quantized weights are made on the first call and again
    whenever W or b differ from the values they were made from (a reload or
    an update), so they never go stale. Other dtypes and the backward pass's
    products (gemm) are TorchGemmOps'."""

    name = "spacy_rnn_int8_affine"

    def __init__(self, device_type: str = "cpu", device_id: int = -1, **kwargs) -> None:
        super().__init__(device_type, device_id, **kwargs)
        self._quantized: Optional[Tuple[numpy.ndarray, numpy.ndarray, nn.Module]] = None

    def affine(self, X, W, b):
        if X.ndim != 2 or W.ndim != 2 or any(a.dtype != numpy.float32 for a in (X, W, b)):
            return super().affine(X, W, b)
        with torch.no_grad():
            return self._int8_linear(W, b)(_as_tensor(X)).numpy()

    def _int8_linear(self, W: numpy.ndarray, b: numpy.ndarray) -> nn.Module:
        cached = self._quantized
        if cached is not None and numpy.array_equal(cached[0], W) and numpy.array_equal(cached[1], b):
            return cached[2]
        quantized = int8_linear(_as_tensor(W), _as_tensor(b))
        self._quantized = (W.copy(), b.copy(), quantized)
        return quantized

    def __getstate__(self):
        # The quantized copy is remade on first use; do not ship it (nlp.pipe workers pickle models).
        return {**self.__dict__, "_quantized": None}


def with_cpu_gemm(layer: Model) -> Model:
    """Give a Thinc layer TorchGemmOps when models are built for the CPU
    (current ops NumpyOps); on a GPU (CupyOps) it keeps the current ops."""
    if type(get_current_ops()) is NumpyOps:
        for node in layer.walk():
            node.ops = TorchGemmOps()
    return layer
