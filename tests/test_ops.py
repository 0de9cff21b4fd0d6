"""TorchGemmOps: the output layers' matrix products through torch, the same as NumPy's."""
import numpy
import pytest

from spacy_rnn.models.architectures import build_rnn_tagger_v1, build_rnn_encoder_v2
from spacy_rnn.models.ops import TorchGemmOps


@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_equals_numpy(trans1, trans2, dtype):
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(dtype)
    y = rng.standard_normal((5, 3) if not trans2 else (3, 5)).astype(dtype)
    x_in = numpy.ascontiguousarray(x.T) if trans1 else x
    expected = x @ (y.T if trans2 else y)
    result = TorchGemmOps().gemm(x_in, y, trans1=trans1, trans2=trans2)
    assert result.dtype == expected.dtype and numpy.allclose(result, expected, atol=1e-5)
    out = numpy.zeros_like(expected)
    assert TorchGemmOps().gemm(x_in, y, out=out, trans1=trans1, trans2=trans2) is out
    assert numpy.allclose(out, expected, atol=1e-5)


def test_gemm_of_strided_and_reversed_arrays():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((8, 6)).astype("float32")[::-2]  # negative strides
    y = rng.standard_normal((6, 4)).astype("float32")
    assert numpy.allclose(TorchGemmOps().gemm(x, y), x @ y, atol=1e-5)
    out = numpy.zeros((4, 8), dtype="float32").T  # not C-contiguous
    TorchGemmOps().gemm(x[:, :4].T.copy().T, y[:4], out=out[:4])
    assert numpy.allclose(out[:4], x[:, :4] @ y[:4], atol=1e-5)


def test_output_layer_uses_it_on_the_cpu():
    model = build_rnn_tagger_v1(build_rnn_encoder_v2(width=8, depth=1))
    assert isinstance(model.get_ref("output_layer").ops, TorchGemmOps)
    assert not isinstance(model.get_ref("tok2vec").ops, TorchGemmOps)  # only the output layer
