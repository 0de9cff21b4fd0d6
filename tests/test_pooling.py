"""The poolings of spacy_rnn.models.pooling, checked by hand on tiny arrays."""
import numpy
import pytest
from numpy.testing import assert_allclose
from thinc.api import Ragged, fix_random_seed

from spacy_rnn.models.pooling import build_pooling

# Two docs of width 4 = [forward 2; backward 2]: lengths 3 and 2.
X = numpy.array(
    [
        [1.0, -1.0, 10.0, 0.0],
        [3.0, 5.0, 20.0, -2.0],
        [2.0, 0.0, 30.0, 7.0],
        [-4.0, 8.0, 1.0, 1.0],
        [6.0, -8.0, 2.0, 3.0],
    ],
    dtype="f",
)
LENGTHS = numpy.array([3, 2], dtype="int32")


def pool(kinds, X=X, lengths=LENGTHS, bidirectional=True):
    fix_random_seed(0)
    model = build_pooling(kinds, X.shape[1], bidirectional)
    model.initialize()
    return model, model.predict(Ragged(X, lengths))


def test_mean_max_by_hand():
    _, Y = pool(["mean", "max"])
    assert_allclose(Y[0], [2.0, 4 / 3, 20.0, 5 / 3, 3.0, 5.0, 30.0, 7.0], rtol=1e-6)
    assert_allclose(Y[1], [1.0, 0.0, 1.5, 2.0, 6.0, 8.0, 2.0, 3.0], rtol=1e-6)


def test_last_bidirectional_is_forward_at_T_and_backward_at_1():
    _, Y = pool(["last"])
    # doc 0: forward half of row 2, backward half of row 0; doc 1: forward of row 4, backward of row 3
    assert_allclose(Y, [[2.0, 0.0, 10.0, 0.0], [6.0, -8.0, 1.0, 1.0]])
    _, Y = pool(["last"], bidirectional=False)
    assert_allclose(Y, [X[2], X[4]])


def test_last_backprop_reaches_the_right_rows():
    model = build_pooling(["last"], 4, True)
    model.initialize()
    Y, backprop = model.begin_update(Ragged(X, LENGTHS))
    dX = backprop(numpy.arange(1, 9, dtype="f").reshape(2, 4)).dataXd
    expected = numpy.zeros_like(X)
    expected[2, :2] = [1, 2]  # forward half at T of doc 0
    expected[0, 2:] = [3, 4]  # backward half at 1 of doc 0
    expected[4, :2] = [5, 6]
    expected[3, 2:] = [7, 8]
    assert_allclose(dX, expected)


def test_attention_is_a_convex_combination_of_the_doc_vectors():
    model, Y = pool(["attention"])
    for row, (start, end) in zip(Y, [(0, 3), (3, 5)]):
        assert numpy.all(row >= X[start:end].min(axis=0) - 1e-5)
        assert numpy.all(row <= X[start:end].max(axis=0) + 1e-5)
    # with the query at zero every token gets the same weight: the mean
    model.layers[0].layers[0].set_param("Q", numpy.zeros(4, dtype="f"))
    assert_allclose(model.predict(Ragged(X, LENGTHS)), [X[:3].mean(0), X[3:].mean(0)], rtol=1e-6)


def test_conv_by_hand_reads_zeros_beyond_each_docs_edges():
    model, Y = pool(["conv"])
    relu = model.layers[0].layers[1].layers[0]
    W, b = relu.get_param("W"), relu.get_param("b")
    zero = numpy.zeros(4, dtype="f")
    for row, doc in zip(Y, [X[:3], X[3:]]):
        padded = [zero, *doc, zero]  # the window never reaches into the other doc
        windows = [numpy.concatenate(padded[t:t + 3]) for t in range(len(doc))]
        expected = numpy.max([numpy.maximum(W @ w + b, 0) for w in windows], axis=0)
        assert_allclose(row, expected, rtol=1e-5, atol=1e-6)


def test_conv_gradient_reaches_only_the_window_of_the_max():
    model = build_pooling(["conv"], 4, True)
    model.initialize()
    relu = model.layers[0].layers[1].layers[0]
    relu.set_param("W", numpy.eye(4, 12, k=4, dtype="f"))  # detector i reads h_t[i] (the window's middle)
    relu.set_param("b", numpy.zeros(4, dtype="f"))
    Y, backprop = model.begin_update(Ragged(X, LENGTHS))
    assert_allclose(Y, [X[:3].max(0).clip(0), X[3:].max(0).clip(0)])
    dX = backprop(numpy.ones((2, 4), dtype="f")).dataXd
    expected = numpy.zeros_like(X)
    for start, end in [(0, 3), (3, 5)]:
        for column in range(4):
            top = start + X[start:end, column].argmax()
            expected[top, column] = 1.0 if X[top, column] > 0 else 0.0
    assert_allclose(dX, expected)


@pytest.mark.parametrize("kind", ["mean", "max", "last", "attention", "conv"])
def test_other_docs_never_change_a_docs_pooled_value(kind):
    """A doc pooled alone and beside longer, shorter and empty docs gets the same value."""
    rng = numpy.random.default_rng(0)
    long_doc = rng.normal(size=(7, 4)).astype("f")
    batch = numpy.concatenate([long_doc, X[:3], X[3:]])
    _, alone = pool([kind], X[:3], numpy.array([3], dtype="int32"))
    _, in_batch = pool([kind], batch, numpy.array([7, 0, 3, 2, 0], dtype="int32"))
    assert_allclose(in_batch[2], alone[0], rtol=1e-6)
    assert not in_batch[1].any() and not in_batch[4].any()  # empty docs pool to zeros


def test_empty_docs_get_zeros_and_no_gradient():
    model = build_pooling(["mean", "max", "last", "attention", "conv"], 4, True)
    model.initialize()
    lengths = numpy.array([0, 3, 0, 2], dtype="int32")
    Y, backprop = model.begin_update(Ragged(X, lengths))
    assert Y.shape == (4, 20) and not Y[0].any() and not Y[2].any()
    dX = backprop(numpy.ones_like(Y))
    assert dX.dataXd.shape == X.shape and numpy.isfinite(dX.dataXd).all()
    Y, backprop = model.begin_update(Ragged(numpy.zeros((0, 4), dtype="f"), numpy.array([0, 0], dtype="int32")))
    assert Y.shape == (2, 20) and not Y.any()
    assert backprop(Y).dataXd.shape == (0, 4)


def test_mean_gradient_by_hand():
    model = build_pooling(["mean"], 4, True)
    model.initialize()
    _, backprop = model.begin_update(Ragged(X, LENGTHS))
    dX = backprop(numpy.ones((2, 4), dtype="f")).dataXd
    assert_allclose(dX[:3], 1 / 3, rtol=1e-6)
    assert_allclose(dX[3:], 1 / 2, rtol=1e-6)


@pytest.mark.parametrize("kinds", [[], ["sum"], ["mean", "mean"]])
def test_bad_pooling_lists_are_refused(kinds):
    with pytest.raises(ValueError, match="pooling"):
        build_pooling(kinds, 4, True)
