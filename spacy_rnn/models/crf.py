"""A linear-chain conditional random field over tag sequences, in log space and
batched over docs: the forward-backward algorithm for the partition function
and marginals, Viterbi decoding, and the BIO/BILUO transition constraints.

Array code only (numpy or cupy through ``xp``); the Thinc layer that holds the
transition scores is ``crf_transitions`` at the bottom. Shapes: ``emissions``
is (batch_size, seq_len, n_tags), padded; ``lengths`` is (batch_size,).
"""
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy
from spacy.training.iob_utils import split_bilu_label
from thinc.api import Model
from thinc.types import Floats2d

NEG_INF = float("-inf")
SCHEMES = ("BIO", "BILUO")


def tag_names(labels: Sequence[str], scheme: str) -> List[str]:
    """The tag set of a scheme over entity labels: "O" first, then per label."""
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; choose one of {SCHEMES}")
    prefixes = "BI" if scheme == "BIO" else "BILU"
    return ["O"] + [f"{p}-{label}" for label in labels for p in prefixes]


@lru_cache(maxsize=32)
def _allowed_transitions(names: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    return _compute_allowed_transitions(names)


def allowed_transitions(names: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Cached by tag set; see _compute_allowed_transitions. Callers must not modify the arrays."""
    return _allowed_transitions(tuple(names))


def _compute_allowed_transitions(names: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Which tags may start a sequence, follow each tag, and end a sequence.

    BIO: I-X only after B-X or I-X (never at the start). BILUO additionally:
    after B-X or I-X only I-X or L-X; a sequence ends on O, L or U.
    returns: start_ok (n_tags,), pair_ok (n_tags, n_tags) [previous, next], end_ok (n_tags,).
    """
    split = [split_bilu_label(name) if name != "O" else ("O", "") for name in names]
    biluo = any(prefix in ("L", "U") for prefix, _ in split)
    n = len(names)
    start_ok = numpy.array([prefix in ("O", "B", "U") for prefix, _ in split])
    end_ok = numpy.array([not biluo or prefix in ("O", "L", "U") for prefix, _ in split])
    pair_ok = numpy.zeros((n, n), dtype=bool)
    for i, (prev, prev_label) in enumerate(split):
        for j, (nxt, label) in enumerate(split):
            continues = nxt in ("I", "L") and prev in ("B", "I") and label == prev_label
            if nxt in ("I", "L") or (biluo and prev in ("B", "I")):
                pair_ok[i, j] = continues
            else:
                pair_ok[i, j] = True
    return start_ok, pair_ok, end_ok


def log_mask(ok, xp=numpy):
    """0 where allowed, -inf where forbidden."""
    ok = xp.asarray(ok)
    return xp.where(ok, 0.0, NEG_INF)


def _logsumexp(xp, x, axis: int):
    top = x.max(axis=axis, keepdims=True)
    top = xp.where(xp.isfinite(top), top, 0.0)
    with numpy.errstate(divide="ignore"):
        out = xp.log(xp.exp(x - top).sum(axis=axis, keepdims=True)) + top
    return out.squeeze(axis)


def forward_backward(xp, emissions, lengths, start, transitions, end, allowed=None):
    """Log partition function and marginals of each doc's tag sequence.

    emissions: (batch_size, seq_len, n_tags); every length must be >= 1.
    lengths: (batch_size,) ints.
    start, end: (n_tags,) scores of the first and the last tag; transitions:
        (n_tags, n_tags) score of [previous, next]. -inf forbids.
    allowed: optional (batch_size, seq_len, n_tags) bool; only paths through
        allowed tags are summed (a partially or fully observed gold sequence).
    returns: log_z (batch_size,), unary (batch_size, seq_len, n_tags) marginals
        (0 on padding), pair (n_tags, n_tags) expected transition counts summed
        over the batch, first (n_tags,) and last (n_tags,) summed marginals.
    """
    E = emissions.astype("float64")
    if allowed is not None:
        E = xp.where(allowed, E, NEG_INF)
    B, T, K = E.shape
    lengths = xp.asarray(lengths)
    alphas = xp.empty((T, B, K))
    alpha = start[None, :] + E[:, 0]
    alphas[0] = alpha
    for t in range(1, T):
        step = _logsumexp(xp, alpha[:, :, None] + transitions[None], axis=1) + E[:, t]
        alpha = xp.where((t < lengths)[:, None], step, alpha)
        alphas[t] = alpha
    log_z = _logsumexp(xp, alpha + end[None, :], axis=1)
    betas = xp.empty((T, B, K))
    beta = xp.broadcast_to(end[None, :], (B, K)).copy()
    betas[T - 1] = beta
    for t in range(T - 2, -1, -1):
        step = _logsumexp(xp, transitions[None] + (E[:, t + 1] + beta)[:, None, :], axis=2)
        beta = xp.where((t < lengths - 1)[:, None], step, end[None, :])
        betas[t] = beta
    valid = (xp.arange(T)[None, :] < lengths[:, None])  # (B, T)
    unary = xp.exp(alphas.transpose(1, 0, 2) + betas.transpose(1, 0, 2) - log_z[:, None, None])
    unary = xp.where(valid[:, :, None], unary, 0.0)
    pair = xp.zeros((K, K))
    for t in range(1, T):
        joint = alphas[t - 1][:, :, None] + transitions[None] + (E[:, t] + betas[t])[:, None, :]
        probs = xp.exp(joint - log_z[:, None, None])
        pair += xp.where((t < lengths)[:, None, None], probs, 0.0).sum(axis=0)
    first = unary[:, 0].sum(axis=0)
    last = unary[xp.arange(B), lengths - 1].sum(axis=0)
    return log_z, unary, pair, first, last


def viterbi(xp, emissions, lengths, start, transitions, end):
    """The best tag sequence of each doc.

    Arguments as in forward_backward. returns: (paths, scores): a list of
    (length,) int arrays and a (batch_size,) array of their scores.
    """
    E = emissions.astype("float64")
    B, T, K = E.shape
    lengths = xp.asarray(lengths)
    score = start[None, :] + E[:, 0]
    backpointers = xp.zeros((T, B, K), dtype="int64")
    identity = xp.broadcast_to(xp.arange(K)[None, :], (B, K))
    for t in range(1, T):
        candidates = score[:, :, None] + transitions[None]  # (B, previous, next)
        best_previous = candidates.argmax(axis=1)  # (B, next)
        step = xp.take_along_axis(candidates, best_previous[:, None, :], axis=1)[:, 0] + E[:, t]
        active = (t < lengths)[:, None]
        score = xp.where(active, step, score)
        # Past a doc's end the pointer is the identity, so its last tag passes through.
        backpointers[t] = xp.where(active, best_previous, identity)
    final = score + end[None, :]
    tag = final.argmax(axis=1)
    best_scores = final[xp.arange(B), tag]
    path = xp.empty((B, T), dtype="int64")
    for t in range(T - 1, -1, -1):
        path[:, t] = tag
        tag = backpointers[t][xp.arange(B), tag]
    return [path[b, : int(lengths[b])] for b in range(B)], best_scores


def pad(xp, arrays: Sequence, n_columns: int):
    """Stack (length_i, n_columns) arrays into (batch, max_length, n_columns), zero padded."""
    lengths = numpy.array([len(a) for a in arrays], dtype="int64")
    padded = xp.zeros((len(arrays), max(int(lengths.max(initial=0)), 1), n_columns), dtype="float64")
    for i, array in enumerate(arrays):
        padded[i, : len(array)] = array
    return padded, lengths


def crf_transitions(nO: Optional[int] = None) -> Model[List[Floats2d], List[Floats2d]]:
    """Holds the CRF's learned scores: `start` (nO,), `transitions` (nO, nO)
    and `end` (nO,). Passes emissions through unchanged; the component computes
    the CRF loss and adds the gradients of these parameters itself. nO (the tag
    count) is inferred at initialize from the output layer before it."""
    return Model(
        "crf_transitions",
        _pass_through,
        init=_init_crf,
        dims={"nO": nO},
        params={"start": None, "transitions": None, "end": None},
    )


def _pass_through(model: Model, X, is_train: bool):
    # Module-level functions, not lambdas, so that the model pickles.
    return X, _identity


def _identity(dY):
    return dY


def resize_crf_transitions(layer: Model, new_nO: int) -> Model:
    """A new crf_transitions layer of new_nO tags, the scores among the layer's own tags copied and
    those of the tags added (the last ones) 0: for a tag set grown by new entity types. A new
    layer (its own id), as Thinc's resize_linear_weighted makes, so that an optimizer's state for
    the old parameters is not applied to the new shapes."""
    resized = crf_transitions(new_nO)
    resized.ops = layer.ops
    for name in ("start", "transitions", "end"):
        old = layer.get_param(name)
        larger = resized.ops.alloc((new_nO,) * old.ndim, dtype=old.dtype)
        larger[tuple(slice(0, size) for size in old.shape)] = old
        resized.set_param(name, larger)
    return resized


def _init_crf(model: Model, X=None, Y=None) -> None:
    if not model.has_dim("nO"):
        sample = X if X is not None else Y
        model.set_dim("nO", sample[0].shape[1])
    n = model.get_dim("nO")
    model.set_param("start", model.ops.alloc1f(n))
    model.set_param("transitions", model.ops.alloc2f(n, n))
    model.set_param("end", model.ops.alloc1f(n))
