"""Thinc glue: turn Docs into the integer tensors the torch modules read, and
the torch outputs back into one array per Doc."""
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import numpy
from spacy.attrs import ORTH, intify_attr
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, NumpyOps, torch2xp, xp2torch
from thinc.types import Floats1d, Floats2d, Ints1d

from .lm import sample_words
from .shims import torch_wrapper
from .torch_modules import RNNLanguageModel, SequenceLogProbs, TokenEncoder

_numpy_ops = NumpyOps()


@dataclass
class TokenBatch:
    """Integer inputs for a batch of docs, their tokens one after another
    (numpy, on the CPU).

    word_ids: (n_tokens,) row of each token's word in the word table, 0 = unknown.
    hashes: (n_tokens, n_features, 4) uint32 hashes of token attributes.
    word_index: (n_tokens,) row of each token in code_points.
    code_points: (n_unique_words, max_chars) code point + 1 of each character, 0 = padding.
    lengths: (batch_size,) number of tokens of each doc.
    """

    word_ids: numpy.ndarray
    hashes: numpy.ndarray
    word_index: numpy.ndarray
    code_points: numpy.ndarray
    lengths: numpy.ndarray


class _CodePointCache:
    """Maps a word's ORTH id to its code points (+1), clipped to max_chars by
    keeping the start and the end of long words. Bounded, so that a stream of
    unique tokens cannot grow it without limit."""

    def __init__(self, max_chars: int, max_entries: int = 200_000) -> None:
        self.max_chars = max_chars
        self.max_entries = max_entries
        self.entries: Dict[int, numpy.ndarray] = {}

    def get(self, orth: int, strings) -> numpy.ndarray:
        found = self.entries.get(orth)
        if found is None:
            text = strings[orth]
            if len(text) > self.max_chars:
                head = (self.max_chars + 1) // 2
                text = text[:head] + text[len(text) - (self.max_chars - head) :]
            found = numpy.fromiter((ord(c) + 1 for c in text), dtype="int64", count=len(text))
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[orth] = found
        return found


class _DocFeaturesForward:
    """The forward of doc_features. A module-level class, not a closure, so
    that a pipeline can be pickled (spawn-started nlp.pipe workers need it)."""

    def __init__(self, attr_ids: List[int], max_word_chars: int) -> None:
        self.attr_ids = attr_ids
        self.cache = _CodePointCache(max_word_chars)

    def __call__(self, model: Model, docs: List[Doc], is_train: bool) -> Tuple[TokenBatch, Callable]:
        batch = _docs_to_batch(docs, self.attr_ids, model.attrs["word_keys"], self.cache)
        return batch, _no_gradient

    def __getstate__(self):
        # The code point cache is rebuilt on demand; do not ship it.
        return {"attr_ids": self.attr_ids, "max_word_chars": self.cache.max_chars}

    def __setstate__(self, state) -> None:
        self.__init__(state["attr_ids"], state["max_word_chars"])


def _no_gradient(d_batch) -> list:
    return []


def doc_features(
    word_attr: str,
    attrs: Sequence[str],
    max_word_chars: int,
    vocab_size: int,
    min_word_freq: int,
) -> Model[List[Doc], TokenBatch]:
    """Extract word ids, hashed token attributes and character code points from docs.

    word_attr (str): the attribute that identifies a word, e.g. "NORM".
    attrs (List[str]): token attributes to hash, e.g. ["PREFIX", "SUFFIX", "SHAPE"].
    max_word_chars (int): characters kept per word for the character encoder.
    vocab_size (int), min_word_freq (int): at most vocab_size words seen at
        least min_word_freq times in training get their own row (see
        init_word_vocab); the rest are the unknown word, row 0.
    """
    attr_ids = [intify_attr(attr) for attr in [word_attr] + list(attrs)]
    if any(attr_id is None for attr_id in attr_ids):
        raise ValueError(f"Unknown token attribute in {[word_attr] + list(attrs)}")
    return Model(
        "doc_features",
        _DocFeaturesForward(attr_ids, max_word_chars),
        attrs={
            "word_attr": word_attr,
            "feature_attrs": list(attrs),
            "vocab_size": vocab_size,
            "min_word_freq": min_word_freq,
            "word_keys": numpy.zeros((0,), dtype="uint64"),
        },
    )


def init_word_vocab(model: Model, docs: Iterable[Doc]) -> int:
    """Give the most frequent words of `docs` (the training data) their own
    rows in the model's word table: at most vocab_size words seen at least
    min_word_freq times. Returns the number of words kept."""
    docs = list(docs)
    kept = 0
    for node in model.walk():
        if node.name != "doc_features":
            continue
        attr_id = intify_attr(node.attrs["word_attr"])
        columns = [doc.to_array([attr_id]).reshape(-1) for doc in docs if len(doc)]
        values = numpy.concatenate(columns) if columns else numpy.zeros((0,), dtype="uint64")
        keys, counts = numpy.unique(values, return_counts=True)
        frequent = counts >= node.attrs["min_word_freq"]
        keys, counts = keys[frequent], counts[frequent]
        top = numpy.argsort(-counts, kind="stable")[: node.attrs["vocab_size"]]
        node.attrs["word_keys"] = numpy.sort(keys[top]).astype("uint64")
        kept = len(top)
    return kept


def _word_ids(values: numpy.ndarray, word_keys: numpy.ndarray) -> numpy.ndarray:
    """Row of each value in the word table: 1 + its position in the sorted
    word_keys, or 0 (unknown)."""
    if len(word_keys) == 0:
        return numpy.zeros(values.shape, dtype="int64")
    position = numpy.searchsorted(word_keys, values)
    position = numpy.minimum(position, len(word_keys) - 1)
    return numpy.where(word_keys[position] == values, position + 1, 0).astype("int64")


def _docs_to_batch(docs: List[Doc], attr_ids: List[int], word_keys, cache: _CodePointCache) -> TokenBatch:
    lengths = numpy.array([len(doc) for doc in docs], dtype="int64")
    columns = [ORTH] + attr_ids
    arrays = [doc.to_array(columns) for doc in docs if len(doc)]
    values = (
        numpy.concatenate(arrays)
        if arrays
        else numpy.zeros((0, len(columns)), dtype="uint64")
    )  # (n_tokens, 2 + n_features) uint64: ORTH, word attribute, hashed features
    n_features = len(attr_ids) - 1
    hashes = numpy.stack(
        [_numpy_ops.hash(numpy.ascontiguousarray(values[:, j + 2]), j) for j in range(n_features)],
        axis=1,
    ) if len(values) else numpy.zeros((0, n_features, 4), dtype="uint32")
    unique_orths, word_index = numpy.unique(values[:, 0], return_inverse=True)
    strings = docs[0].vocab.strings if docs else None
    words = [cache.get(int(orth), strings) for orth in unique_orths]
    max_chars = max(max((len(w) for w in words), default=1), 1)
    code_points = numpy.zeros((len(words), max_chars), dtype="int64")
    for row, word in enumerate(words):
        code_points[row, : len(word)] = word
    return TokenBatch(
        word_ids=_word_ids(values[:, 1], word_keys),
        hashes=hashes,
        word_index=word_index.reshape(-1).astype("int64"),
        code_points=code_points,
        lengths=lengths,
    )


def _convert_inputs(model: Model, batch: TokenBatch, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    args = ArgsKwargs(
        args=(
            xp2torch(batch.word_ids, device=device),
            xp2torch(batch.hashes.astype("int64"), device=device),
            xp2torch(batch.word_index, device=device),
            xp2torch(batch.code_points, device=device),
            xp2torch(batch.lengths),  # packing wants lengths on the CPU
        ),
        kwargs={},
    )
    # Integer inputs have no gradient.
    return args, lambda d_args: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool) -> Tuple[List[Floats2d], Callable]:
    batch, Y_torch = inputs_outputs
    Y = torch2xp(Y_torch, ops=model.ops)  # (n_tokens, width)
    ends = numpy.cumsum(batch.lengths)[:-1].tolist()
    outputs = model.ops.xp.split(Y, ends)

    def backprop(d_outputs: List[Floats2d]) -> ArgsKwargs:
        dY = model.ops.xp.concatenate(d_outputs) if d_outputs else Y * 0
        dY_torch = xp2torch(dY.reshape(Y.shape), device=Y_torch.device)
        return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": dY_torch})

    return outputs, backprop


def wrap_token_encoder(encoder: TokenEncoder) -> Model[TokenBatch, List[Floats2d]]:
    """Wrap a TokenEncoder so that it reads a TokenBatch and returns one
    (n_tokens, width) array per doc."""
    model = torch_wrapper(encoder, convert_inputs=_convert_inputs, convert_outputs=_convert_outputs)
    model.set_dim("nO", encoder.output_width)
    return model


# The language model: per-doc word ids in, per-token log-probabilities out.


def _convert_lm_inputs(model: Model, ids: List[Ints1d], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    lengths = numpy.array([len(x) for x in ids], dtype="int64")
    flat = numpy.concatenate([numpy.asarray(x, dtype="int64") for x in ids]) if ids else numpy.zeros((0,), dtype="int64")
    args = ArgsKwargs(
        args=(xp2torch(flat, device=model.shims[0].device), xp2torch(lengths)),  # lengths stay on the CPU
        kwargs={},
    )
    return args, lambda d_args: []


def _convert_lm_outputs(model: Model, inputs_outputs, is_train: bool) -> Tuple[List[Floats1d], Callable]:
    ids, Y_torch = inputs_outputs
    Y = torch2xp(Y_torch, ops=model.ops)  # (n_tokens,)
    ends = numpy.cumsum([len(x) for x in ids])[:-1].tolist()
    outputs = model.ops.xp.split(Y, ends)

    def backprop(d_outputs: List[Floats1d]) -> ArgsKwargs:
        dY = model.ops.xp.concatenate(d_outputs) if d_outputs else Y * 0
        return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": xp2torch(dY.reshape(Y.shape), device=Y_torch.device)})

    return outputs, backprop


def wrap_sequence_log_probs(module: SequenceLogProbs) -> Model[List[Ints1d], List[Floats1d]]:
    """Wrap a SequenceLogProbs: one int array of word ids per doc in, one
    array of log p(token | the tokens before it) per doc out."""
    return torch_wrapper(module, convert_inputs=_convert_lm_inputs, convert_outputs=_convert_lm_outputs)


def _lm_module(model: Model) -> SequenceLogProbs:
    for node in model.walk():
        for shim in node.shims:
            if isinstance(shim._model, SequenceLogProbs):
                return shim._model
    raise ValueError(f"{model.name} holds no language model")


def torch_language_model(model: Model) -> RNNLanguageModel:
    """The torch RNNLanguageModel inside a model made by spacy_rnn.RNNLanguageModel.v1."""
    return _lm_module(model).lm


def vocab_rows_in_use(model: Model) -> int:
    return int(torch_language_model(model).n_words)


def set_vocab_rows_in_use(model: Model, n_words: int) -> None:
    """Tell the model how many vocabulary rows are real words; the others get no probability."""
    lm = torch_language_model(model)
    if not 0 < n_words <= lm.vocab_size:
        raise ValueError(f"the vocabulary has {n_words} words; the model has room for 1 to {lm.vocab_size}")
    lm.n_words.fill_(n_words)


def load_language_model_state(model: Model, state_dict) -> None:
    """Copy the weights of a trained RNNLanguageModel (e.g. from spacy_rnn.lm.train_lm) into the model."""
    torch_language_model(model).load_state_dict(state_dict)


def sample_from_model(model: Model, prompt_ids: Sequence[int], n_words: int, *, temperature: float, seed: int, banned_ids: Sequence[int] = ()) -> List[int]:
    """Word ids sampled after the prompt (see spacy_rnn.lm.sample_words)."""
    return sample_words(
        torch_language_model(model), prompt_ids, n_words, temperature=temperature, seed=seed, banned_ids=banned_ids
    )
