"""Pooling token vectors into one vector per doc, as Thinc layers over a
Ragged (the docs' token vectors one after another, with their lengths). A
Ragged holds no padding, so padding can never reach a pooled value.

- "mean": the mean of h_1..h_T (Thinc's reduce_mean).
- "max": the element-wise max (reduce_max).
- "last": the last state. For a bidirectional encoder, whose vectors are
  [forward; backward], the forward half at T and the backward half at 1:
  each direction's state after reading the whole doc.
- "attention": a learned attention-weighted mean, sum_t a_t h_t with
  a = softmax_t(q . gelu(W h_t + b)) over each doc's own tokens
  (Thinc's ParametricAttention_v2, then reduce_sum).
- "conv": learned detectors of three consecutive states, max over time:
  max_t relu(W [h_{t-1}; h_t; h_{t+1}] + b), as many as the states are wide
  (a convolution of width 3 over the doc, Thinc's expand_window then Relu,
  then reduce_max; the window stops at the doc's edges, where it reads zeros,
  as in Kim's 2014 CNN).

Several poolings are concatenated. An empty doc pools to zeros (Thinc's
reductions refuse zero-length sequences, `skip_empty` keeps them out), so its
output is the same alone and in any batch.
"""
from typing import Callable, List, Optional, Sequence, Tuple

from thinc.api import (
    Gelu,
    Model,
    ParametricAttention_v2,
    Relu,
    chain,
    concatenate,
    expand_window,
    reduce_first,
    reduce_last,
    reduce_max,
    reduce_mean,
    reduce_sum,
    with_array,
)
from thinc.types import Floats2d, Ragged

from .ops import with_cpu_gemm

POOLINGS = ("mean", "max", "last", "attention", "conv")


def ragged_columns(start: int, end: int) -> Model[Ragged, Ragged]:
    """The columns start:end of a Ragged's data."""
    return Model(f"columns({start}:{end})", _columns_forward, attrs={"start": start, "end": end})


def _columns_forward(model: Model, X: Ragged, is_train: bool) -> Tuple[Ragged, Callable]:
    start, end = model.attrs["start"], model.attrs["end"]
    width = X.dataXd.shape[1]

    def backprop(dY: Ragged) -> Ragged:
        dX = model.ops.alloc2f(dY.dataXd.shape[0], width)
        dX[:, start:end] = dY.dataXd
        return Ragged(dX, X.lengths)

    return Ragged(model.ops.xp.ascontiguousarray(X.dataXd[:, start:end]), X.lengths), backprop


def last_state(width: int, bidirectional: bool) -> Model[Ragged, Floats2d]:
    """Each direction's final state: h_T, or [forward h_T; backward h_1]."""
    if not bidirectional:
        return reduce_last()
    if width % 2:
        raise ValueError(f"a bidirectional encoder's width is even (forward; backward), got {width}")
    half = width // 2
    return concatenate(
        chain(ragged_columns(0, half), reduce_last()),
        chain(ragged_columns(half, width), reduce_first()),
    )


def attention_pooling(width: int) -> Model[Ragged, Floats2d]:
    return chain(ParametricAttention_v2(key_transform=Gelu(nO=width, nI=width), nO=width), reduce_sum())


def conv_pooling(width: int) -> Model[Ragged, Floats2d]:
    """max_t relu(W [h_{t-1}; h_t; h_{t+1}] + b), `width` detectors; zeros beyond a doc's edges."""
    return chain(expand_window(window_size=1), with_array(Relu(nO=width, nI=3 * width)), reduce_max())


def skip_empty(layer: Model[Ragged, Floats2d]) -> Model[Ragged, Floats2d]:
    """Run `layer` on the non-empty sequences only; an empty one gets a row of zeros."""
    return Model("skip_empty", _skip_empty_forward, init=_skip_empty_init, layers=[layer], dims={"nO": None})


def _skip_empty_forward(model: Model, X: Ragged, is_train: bool) -> Tuple[Floats2d, Callable]:
    inner = model.layers[0]
    lengths = model.ops.to_numpy(X.lengths)
    keep = (lengths > 0).nonzero()[0]
    if len(keep) == len(lengths):
        return inner(X, is_train)
    Y = model.ops.alloc2f(len(lengths), model.get_dim("nO"))
    if not len(keep):
        return Y, lambda dY: Ragged(model.ops.alloc2f(*X.dataXd.shape), X.lengths)
    Y_kept, backprop_kept = inner(Ragged(X.dataXd, X.lengths[keep]), is_train)
    Y[keep] = Y_kept

    def backprop(dY: Floats2d) -> Ragged:
        dX = backprop_kept(model.ops.xp.ascontiguousarray(dY[keep]))
        return Ragged(dX.dataXd, X.lengths)

    return Y, backprop


def _skip_empty_init(model: Model, X=None, Y=None) -> None:
    model.layers[0].initialize()
    if model.has_dim("nO") is None and X is not None:  # built without the encoder's width (WIDTHLESS)
        model.set_dim("nO", X.dataXd.shape[1] * model.attrs["n_poolings"])


# The poolings that need not know the encoder's width when the model is built ("last" splits it into
# the directions, "attention" and "conv" size their weights by it): a listener whose width
# init_word_vocabularies sets at initialize can feed them.
WIDTHLESS = ("mean", "max")


def build_pooling(poolings: Sequence[str], width: Optional[int], bidirectional: bool) -> Model[Ragged, Floats2d]:
    """The concatenation of the poolings, in the order given; output width len(poolings) * width.
    width None (not known yet): only the WIDTHLESS poolings, the output width set at initialize."""
    if not poolings:
        raise ValueError(f"choose at least one pooling of {POOLINGS}")
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown:
        raise ValueError(f"unknown pooling {unknown[0]!r}; choose from {POOLINGS}")
    if len(set(poolings)) != len(poolings):
        raise ValueError(f"each pooling at most once, got {list(poolings)}")
    needs_width = [p for p in poolings if p not in WIDTHLESS]
    if width is None and needs_width:
        raise ValueError(f"pooling {needs_width[0]!r} needs the encoder's output width (nO) when the model is built; "
                         f"give a listener its width, or pool with {' and '.join(WIDTHLESS)} only")
    layers: List[Model] = []
    for kind in poolings:
        if kind == "mean":
            layers.append(reduce_mean())
        elif kind == "max":
            layers.append(reduce_max())
        elif kind == "last":
            layers.append(last_state(width, bidirectional))
        elif kind == "attention":
            layers.append(attention_pooling(width))
        else:
            layers.append(conv_pooling(width))
    pooled = layers[0] if len(layers) == 1 else concatenate(*layers)
    # The learned poolings' products (conv, attention) run on torch's gemm on the CPU (BLIS took
    # three times as long for the conv's).
    model = with_cpu_gemm(skip_empty(pooled))
    model.attrs["n_poolings"] = len(poolings)
    if width is not None:
        model.set_dim("nO", width * len(poolings))
    return model
