"""TorchGemmOps: the output layers' matrix products through torch, the same as NumPy's; Int8AffineOps:
the same affine map with int8 weights, close to it, following the weights it is given."""
import pickle

import numpy
import pytest

from spacy_rnn.models.architectures import build_rnn_tagger_v1, build_rnn_encoder_v2
from spacy_rnn.models.ops import Int8AffineOps, TorchGemmOps


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


def test_int8_affine_is_the_float_affine_within_int8_rounding():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((40, 16)).astype("float32")
    W = rng.standard_normal((5, 16)).astype("float32")
    b = rng.standard_normal(5).astype("float32")
    ops = Int8AffineOps()
    result = ops.affine(x, W, b)
    expected = x @ W.T + b
    assert result.dtype == numpy.float32 and result.shape == expected.shape
    error = numpy.abs(result - expected).max()
    assert 0 < error <= 0.05 * numpy.abs(expected).max()  # int8, not float: close, not equal
    # float64 stays float (TorchGemmOps'), exactly
    assert numpy.allclose(ops.affine(x, W.astype("float64"), b.astype("float64")), expected, atol=1e-5)


def test_int8_affine_follows_changed_weights():
    """The int8 copy of W is remade when W or b change (a reload, an update in place)."""
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((40, 16)).astype("float32")
    W = rng.standard_normal((5, 16)).astype("float32")
    b = numpy.zeros(5, dtype="float32")
    ops = Int8AffineOps()
    ops.affine(x, W, b)
    W *= -2.0
    b += 3.0
    assert numpy.abs(ops.affine(x, W, b) - (x @ W.T + b)).max() <= 0.1 * numpy.abs(x @ W.T).max()


def test_int8_affine_ops_pickle_without_their_int8_copy():
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((8, 4)).astype("float32")
    W, b = rng.standard_normal((3, 4)).astype("float32"), numpy.zeros(3, dtype="float32")
    ops = Int8AffineOps()
    expected = ops.affine(x, W, b)
    copy = pickle.loads(pickle.dumps(ops))
    assert copy._quantized is None and ops._quantized is not None
    assert numpy.array_equal(copy.affine(x, W, b), expected)
