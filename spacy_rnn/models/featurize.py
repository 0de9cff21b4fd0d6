"""Docs -> the integer batches the token encoder reads, and the encoder's word
vocabulary (which words get their own row)."""
import warnings
import weakref
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.attrs import IDS as ATTR_IDS, ORTH, intify_attr
from spacy.tokens import Doc
from thinc.api import Model, NumpyOps

_numpy_ops = NumpyOps()
IDS_TO_ATTR_NAMES = {attr_id: name for name, attr_id in ATTR_IDS.items()}


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


class FeatureLayoutError(ValueError):
    """The config's feature settings differ from those the weights were trained with."""


class _DocFeaturesForward:
    """The forward of doc_features. A module-level class, not a closure, so
    that a pipeline can be pickled (spawn-started nlp.pipe workers need it)."""

    def __init__(self, attr_ids: List[int], max_word_chars: int) -> None:
        self.attr_ids = attr_ids
        self.cache = _CodePointCache(max_word_chars)
        self.checked_layout: Optional[tuple] = None  # the last layout found to agree

    def __call__(self, model: Model, docs: List[Doc], is_train: bool) -> Tuple[TokenBatch, Callable]:
        _FORWARDS[model.id] = self  # also for a copy or an unpickled model, made without doc_features()
        self._check_layout(model)
        batch = _docs_to_batch(docs, self.attr_ids, model.attrs["word_keys"], self.cache)
        return batch, _no_gradient

    def _check_layout(self, model: Model) -> None:
        """The features this forward extracts (from the config it was built
        from) must be those the weights were trained with (model.attrs,
        which loading restores): another order of attrs or another
        max_word_chars would feed the weights other inputs without an error."""
        trained = [model.attrs["word_attr"]] + list(model.attrs["feature_attrs"])
        trained_chars = model.attrs.get("max_word_chars", self.cache.max_chars)  # absent in older pipelines
        layout = (tuple(trained), trained_chars)
        if layout == self.checked_layout:  # the attrs change only when weights are loaded
            return
        built = [IDS_TO_ATTR_NAMES.get(attr_id, attr_id) for attr_id in self.attr_ids]
        problems = []
        if [intify_attr(name) for name in trained] != self.attr_ids:
            problems.append(f"word_attr + attrs are {built[0]!r} + {built[1:]}, trained with {trained[0]!r} + {trained[1:]}")
        if trained_chars != self.cache.max_chars:
            problems.append(f"max_word_chars is {self.cache.max_chars}, trained with {trained_chars}")
        if problems:
            raise FeatureLayoutError("; ".join(problems))
        self.checked_layout = layout

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
    *,
    vocab_from_sample: bool = False,
) -> Model[List[Doc], TokenBatch]:
    """Extract word ids, hashed token attributes and character code points from docs.

    word_attr (str): the attribute that identifies a word, e.g. "NORM".
    attrs (List[str]): token attributes to hash, e.g. ["PREFIX", "SUFFIX", "SHAPE"].
    max_word_chars (int): characters kept per word for the character encoder.
    vocab_size (int), min_word_freq (int): at most vocab_size words seen at
        least min_word_freq times in training get their own row (see
        init_word_vocab); the rest are the unknown word, row 0.
    vocab_from_sample (bool): if the vocabulary was not chosen from the
        training corpus before the model is initialized, choose it from the
        initialization sample and warn (RNNEncoder.v2); v1 leaves it empty.
    """
    settings = [("word_attr", word_attr)] + [("attrs", attr) for attr in attrs]
    for setting, attr in settings:
        if intify_attr(attr) is None:
            raise ValueError(f"encoder {setting}: unknown token attribute {attr!r} (spaCy's names, e.g. NORM, PREFIX, SUFFIX, SHAPE)")
    attr_ids = [intify_attr(attr) for _, attr in settings]
    return Model(
        "doc_features",
        _DocFeaturesForward(attr_ids, max_word_chars),
        init=_init_vocab_from_sample if vocab_from_sample else None,
        attrs={
            "word_attr": word_attr,
            "feature_attrs": list(attrs),
            "max_word_chars": max_word_chars,
            "vocab_size": vocab_size,
            "min_word_freq": min_word_freq,
            "word_keys": numpy.zeros((0,), dtype="uint64"),
            # How the vocabulary was chosen: "" (not yet), "corpus" or "sample".
            "word_vocab_source": "",
        },
    )


@dataclass
class WordVocabStats:
    """What choosing a word vocabulary did: n_words words got their own row,
    covering `coverage` (0-1) of the n_tokens tokens they were counted on."""

    n_words: int
    n_tokens: int
    coverage: float

    def describe(self, component: str) -> str:
        return (
            f"[{component}] word vocabulary: {self.n_words:,} words covering "
            f"{100 * self.coverage:.1f}% of training tokens"
        )


def _feature_nodes(model: Model) -> List[Model]:
    return [node for node in model.walk() if node.name == "doc_features"]


# Each doc_features model's forward (which holds its code point cache) by the model's id, weakly
# (an entry goes with its forward): Thinc keeps a model's forward function to itself, and the
# cache is not the model's state to save.
_FORWARDS: "weakref.WeakValueDictionary[int, _DocFeaturesForward]" = weakref.WeakValueDictionary()


def forget_words(model: Model) -> None:
    """Empty the code point cache of every encoder in the model: the words
    it has seen, keyed by their strings' ids (e.g. when a spaCy memory zone
    ends, which frees the strings made in it; the cache would otherwise keep
    up to 200,000 words, about 90 MB, across zones). It refills on demand."""
    for node in _feature_nodes(model):
        forward = _FORWARDS.get(node.id)
        if forward is not None:
            forward.cache.entries.clear()


def check_feature_layout(model: Model) -> None:
    """Raise FeatureLayoutError if an encoder in the model was built (from its
    config) with other features than its weights were trained with. Runs the
    features on an empty batch, where the check lives."""
    for node in _feature_nodes(model):
        node.predict([])


def has_word_vocab(model: Model) -> bool:
    """Whether the model holds an encoder with a word vocabulary to choose."""
    return bool(_feature_nodes(model))


def init_word_vocab(model: Union[Model, Sequence[Model]], docs: Iterable[Doc], *,
                    source: str = "corpus") -> List[WordVocabStats]:
    """Give the most frequent words of `docs` (the training data) their own
    rows in the word table of every encoder in `model` (or in each of several
    models): at most vocab_size words seen at least min_word_freq times.
    Returns what each encoder got, in walk order. Reads `docs` once, keeping
    counts only (not the docs), so it may be a stream of any length."""
    nodes = [node for each in ([model] if isinstance(model, Model) else model) for node in _feature_nodes(each)]
    if not nodes:
        return []
    attr_ids = sorted({intify_attr(node.attrs["word_attr"]) for node in nodes})
    counts = {attr_id: _WordCounts() for attr_id in attr_ids}
    for doc in docs:
        if len(doc):
            columns = doc.to_array(attr_ids).reshape(len(doc), len(attr_ids))
            for i, attr_id in enumerate(attr_ids):
                counts[attr_id].add(columns[:, i])
    stats = []
    for node in nodes:
        keys, frequencies = counts[intify_attr(node.attrs["word_attr"])].totals()
        n_tokens = int(frequencies.sum())
        frequent = frequencies >= node.attrs["min_word_freq"]
        keys, frequencies = keys[frequent], frequencies[frequent]
        top = numpy.argsort(-frequencies, kind="stable")[: node.attrs["vocab_size"]]
        node.attrs["word_keys"] = numpy.sort(keys[top]).astype("uint64")
        node.attrs["word_vocab_source"] = source
        covered = int(frequencies[top].sum())
        stats.append(WordVocabStats(len(top), n_tokens, covered / n_tokens if n_tokens else 0.0))
    return stats


class _WordCounts:
    """How often each key occurs in the arrays added, in bounded memory: the
    arrays are gathered up to CHUNK values, then merged into sorted (key,
    count) totals."""

    CHUNK = 1_000_000

    def __init__(self) -> None:
        self.keys = numpy.zeros((0,), dtype="uint64")
        self.counts = numpy.zeros((0,), dtype="int64")
        self.pending: List[numpy.ndarray] = []
        self.n_pending = 0

    def add(self, values: numpy.ndarray) -> None:
        self.pending.append(values.astype("uint64", copy=False))
        self.n_pending += len(values)
        if self.n_pending >= self.CHUNK:
            self._merge()

    def totals(self) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """The keys, in ascending order, and how often each occurred."""
        self._merge()
        return self.keys, self.counts

    def _merge(self) -> None:
        if not self.pending:
            return
        new_keys, new_counts = numpy.unique(numpy.concatenate(self.pending), return_counts=True)
        keys, inverse = numpy.unique(numpy.concatenate([self.keys, new_keys]), return_inverse=True)
        self.counts = numpy.bincount(inverse, weights=numpy.concatenate([self.counts, new_counts]),
                                     minlength=len(keys)).astype("int64")
        self.keys, self.pending, self.n_pending = keys, [], 0


def _init_vocab_from_sample(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    """Thinc init of RNNEncoder.v2's features: the vocabulary should have
    been chosen from the whole corpus by now (see init_word_vocab's callers);
    if not, the sample is all there is, so use it and say so."""
    if model.attrs["word_vocab_source"] or X is None:
        return
    (stats,) = init_word_vocab(model, X, source="sample")
    warnings.warn(
        f"spacy_rnn.RNNEncoder.v2: the word vocabulary was chosen from the {len(X)} docs of the "
        f"initialization sample only ({stats.n_words} words), not from the training corpus, because "
        "the encoder's component (e.g. spaCy's tok2vec) passes its model only a sample. Add\n"
        "[initialize.before_init]\n@callbacks = \"spacy_rnn.init_word_vocabularies.v1\"\n"
        "to the config to choose it from the whole training corpus (from Python: call "
        "spacy_rnn.choose_word_vocabularies(nlp, docs) before nlp.initialize).",
        stacklevel=2,
    )


def _word_ids(values: numpy.ndarray, word_keys: numpy.ndarray) -> numpy.ndarray:
    """Row of each value in the word table: 1 + its position in the sorted
    word_keys, or 0 (unknown)."""
    if len(word_keys) == 0:
        return numpy.zeros(values.shape, dtype="int64")
    position = numpy.searchsorted(word_keys, values)
    position = numpy.minimum(position, len(word_keys) - 1)
    return numpy.where(word_keys[position] == values, position + 1, 0).astype("int64")


class _StringsOf:
    """The text of an ORTH id, from the StringStore of whichever doc's Vocab
    has it: a batch may mix docs of several Vocabs (the hashes agree, the
    stores need not hold the same strings). Only asked on code-point cache misses."""

    def __init__(self, docs: List[Doc]) -> None:
        self.docs = docs
        self.stores: Optional[list] = None  # found on the first miss: most batches have none

    def __getitem__(self, orth: int) -> str:
        if self.stores is None:
            self.stores = list({id(doc.vocab): doc.vocab.strings for doc in self.docs}.values())
        for store in self.stores[:-1]:
            if orth in store:
                return store[orth]
        return self.stores[-1][orth]


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
    ) if len(values) and n_features else numpy.zeros((len(values), n_features, 4), dtype="uint32")
    unique_orths, word_index = numpy.unique(values[:, 0], return_inverse=True)
    strings = _StringsOf(docs)
    words = [cache.get(orth, strings) for orth in unique_orths.tolist()]
    n_chars = numpy.fromiter((len(w) for w in words), dtype="int64", count=len(words))
    max_chars = max(int(n_chars.max()) if len(words) else 1, 1)
    code_points = numpy.zeros((len(words), max_chars), dtype="int64")
    if len(words):  # each word's code points, left-aligned in its row
        code_points[numpy.arange(max_chars)[None, :] < n_chars[:, None]] = numpy.concatenate(words)
    return TokenBatch(
        word_ids=_word_ids(values[:, 1], word_keys),
        hashes=hashes,
        word_index=word_index.reshape(-1).astype("int64"),
        code_points=code_points,
        lengths=lengths,
    )
