"""Count-based taggers in pure numpy: a most-frequent-tag baseline and a
hidden Markov model in the manner of TnT (Brants 2000), decoded with Viterbi
in log space.

- `MostFrequentTagModel`: a known word gets the tag it carried most often in
  training; an unseen word gets the most frequent tag of its word class
  (coarse shape plus the longest suffix seen among rare training words), else
  the overall most frequent tag.
- `HMM`: order 1 (bigram transitions) or order 2 (trigram transitions),
  smoothed by linear interpolation with TnT's deleted-interpolation lambdas.
  Emissions are maximum-likelihood P(w|t) for known words. Unseen words get
  TnT's suffix model (after a lower-case lookup for sentence-initial and
  all-capital words): P(t | suffix) from the rare training words, recursively
  smoothed from the longest seen suffix down to the empty one with weight
  theta, separately for capitalised and uncapitalised words, and turned into
  P(w|t) (up to a factor constant over tags) by Bayes' rule, P(t|suffix) / P(t).
- `viterbi` decodes in log space. The loop runs over time only; each step is
  one numpy operation over all states (tags for order 1, tag pairs for
  order 2). Tags whose emission probability is zero are dropped from a
  position's state set first, which keeps the search exact and small.

Both models serialize to plain dicts of lists and numpy arrays (srsly's
msgpack handles the arrays), never to pickle. No spaCy here: the pipeline
components live in `components/baselines.py`.
"""
import re
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

# A sentence for training: its words and one tag per word.
TaggedSequence = Tuple[Sequence[str], Sequence[str]]
# One position of the decoding lattice: candidate tag ids and their log emission scores.
Emission = Tuple[np.ndarray, np.ndarray]

_NUMBER = re.compile(r"^[+-]?[\d,.:/]*\d[\d,.:/]*$")


def is_capitalised(word: str) -> bool:
    return word[:1].isupper()


def word_shape_class(word: str) -> str:
    """A coarse word shape: "num" for numbers, else flags for a first capital
    (X), all capitals (A), a digit (d), a hyphen (h), no letter at all (p)."""
    if _NUMBER.match(word):
        return "num"
    flags = ""
    if word[:1].isupper():
        flags += "X"
    if len(word) > 1 and word.isupper():
        flags += "A"
    if any(ch.isdigit() for ch in word):
        flags += "d"
    if "-" in word:
        flags += "h"
    if not any(ch.isalpha() for ch in word):
        flags += "p"
    return flags or "x"


def _collect_tags(sentences: Sequence[TaggedSequence]) -> List[str]:
    tags = sorted({tag for _, sent_tags in sentences for tag in sent_tags})
    if not tags:
        raise ValueError("no tagged tokens to learn from")
    return tags


def _check_lengths(sentences: Sequence[TaggedSequence]) -> None:
    for i, (words, tags) in enumerate(sentences):
        if len(words) != len(tags):
            raise ValueError(f"sentence {i}: {len(words)} words but {len(tags)} tags")


def _pack_counts(table: Dict[str, Counter]) -> Dict:
    """{key: Counter(tag_id -> count)} as CSR-like arrays, for msgpack."""
    keys = list(table)
    indptr = np.zeros(len(keys) + 1, dtype=np.int64)
    cols: List[int] = []
    vals: List[int] = []
    for i, key in enumerate(keys):
        items = sorted(table[key].items())
        cols.extend(tag for tag, _ in items)
        vals.extend(count for _, count in items)
        indptr[i + 1] = len(cols)
    return {
        "keys": keys,
        "indptr": indptr,
        "cols": np.asarray(cols, dtype=np.int32),
        "vals": np.asarray(vals, dtype=np.int64),
    }


def _unpack_counts(data: Dict) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The inverse of `_pack_counts`, as {key: (tag_ids, counts)}."""
    indptr, cols, vals = (np.asarray(data[k]) for k in ("indptr", "cols", "vals"))
    spans = zip(indptr[:-1], indptr[1:])
    return {key: (cols[start:end], vals[start:end]) for key, (start, end) in zip(data["keys"], spans)}


def _word_tag_counts(sentences: Sequence[TaggedSequence], tag_ids: Dict[str, int]) -> Dict[str, Counter]:
    lexicon: Dict[str, Counter] = {}
    for words, tags in sentences:
        for word, tag in zip(words, tags):
            lexicon.setdefault(word, Counter())[tag_ids[tag]] += 1
    return lexicon


class MostFrequentTagModel:
    """Most-frequent-tag baseline with a word-class fallback for unseen words.

    tags (List[str]): The tag set; ids index into it.
    word_tags (Dict[str, int]): The most frequent tag id of each training word.
    class_tags (Dict[str, int]): The most frequent tag id of each word class
        ("shape|suffix") among the rare training words.
    default_tag (int): The overall most frequent tag id.
    max_suffix (int): The longest suffix used in word classes.
    """

    def __init__(
        self,
        tags: List[str],
        word_tags: Dict[str, int],
        class_tags: Dict[str, int],
        default_tag: int,
        *,
        max_suffix: int,
    ) -> None:
        self.tags = list(tags)
        self.word_tags = dict(word_tags)
        self.class_tags = dict(class_tags)
        self.default_tag = int(default_tag)
        self.max_suffix = max_suffix

    @staticmethod
    def word_classes(word: str, max_suffix: int) -> List[str]:
        """Class keys of a word, most specific first: shape plus the last
        max_suffix, ..., 1 characters, then the shape alone."""
        shape = word_shape_class(word)
        lower = word.lower()
        lengths = range(min(max_suffix, len(lower)), 0, -1)
        return [f"{shape}|{lower[-n:]}" for n in lengths] + [f"{shape}|"]

    @classmethod
    def fit(
        cls, sentences: Iterable[TaggedSequence], *, max_suffix: int = 3, rare_max: int = 1
    ) -> "MostFrequentTagModel":
        """Count from tagged sentences.

        max_suffix (int): The longest suffix in a word class.
        rare_max (int): Word classes are counted over the tokens of words seen at
            most this often, since unseen words behave like rare ones.
        """
        sentences = list(sentences)
        _check_lengths(sentences)
        tags = _collect_tags(sentences)
        tag_ids = {tag: i for i, tag in enumerate(tags)}
        lexicon = _word_tag_counts(sentences, tag_ids)
        tag_totals = Counter()
        for counts in lexicon.values():
            tag_totals.update(counts)

        def best(counts: Counter) -> int:
            # Ties go to the tag that is more frequent overall, then to the lower id.
            return max(counts, key=lambda t: (counts[t], tag_totals[t], -t))

        class_counts: Dict[str, Counter] = {}
        for word, counts in lexicon.items():
            if sum(counts.values()) <= rare_max:
                for key in cls.word_classes(word, max_suffix):
                    class_counts.setdefault(key, Counter()).update(counts)
        return cls(
            tags,
            {word: best(counts) for word, counts in lexicon.items()},
            {key: best(counts) for key, counts in class_counts.items()},
            best(tag_totals),
            max_suffix=max_suffix,
        )

    def predict_ids(self, words: Sequence[str]) -> List[int]:
        return [self._tag_id(word) for word in words]

    def predict(self, words: Sequence[str]) -> List[str]:
        return [self.tags[i] for i in self.predict_ids(words)]

    def _tag_id(self, word: str) -> int:
        if word in self.word_tags:
            return self.word_tags[word]
        for key in self.word_classes(word, self.max_suffix):
            if key in self.class_tags:
                return self.class_tags[key]
        return self.default_tag

    def to_dict(self) -> Dict:
        return {
            "kind": "most_frequent",
            "tags": self.tags,
            "word_tags": self.word_tags,
            "class_tags": self.class_tags,
            "default_tag": self.default_tag,
            "max_suffix": self.max_suffix,
        }

    @classmethod
    def from_dict(cls, data: Dict) -> "MostFrequentTagModel":
        return cls(
            data["tags"], data["word_tags"], data["class_tags"], data["default_tag"], max_suffix=data["max_suffix"]
        )


class SuffixModel:
    """TnT's suffix model: P(t | last letters of a word), learned from rare words.

    P(t | l_{n-i+1} ... l_n) = (P̂(t | l_{n-i+1} ... l_n) + theta * P(t | l_{n-i+2} ... l_n)) / (1 + theta),
    starting from the tag distribution P̂(t) of the rare words (the empty
    suffix) and stopping at the longest suffix seen in training. theta is the
    standard deviation of P̂(t) over the s tags,
    sqrt(1/(s-1) * sum_j (P̂(t_j) - 1/s)^2). Brants (2000) calls theta the
    standard deviation, though his equation (10) prints the variance; the
    standard deviation was a little better on the WSJ-sample dev set.

    n_tags (int): The size of the tag set.
    counts (Dict[str, Tuple[ndarray, ndarray]]): suffix -> (tag ids, counts).
    max_suffix (int): The longest suffix.
    """

    def __init__(self, n_tags: int, counts: Dict[str, Tuple[np.ndarray, np.ndarray]], *, max_suffix: int) -> None:
        self.n_tags = n_tags
        self.counts = counts
        self.max_suffix = max_suffix
        self.base = self._distribution("")
        if self.base is None:
            self.theta = 0.0
        else:
            mean = 1.0 / n_tags
            self.theta = float(np.sqrt(((self.base - mean) ** 2).sum() / max(n_tags - 1, 1)))

    @classmethod
    def fit(cls, word_counts: Dict[str, Counter], n_tags: int, *, max_suffix: int) -> "SuffixModel":
        """word_counts (Dict[str, Counter]): The rare words with their tag counts."""
        table: Dict[str, Counter] = {}
        for word, counts in word_counts.items():
            for n in range(min(max_suffix, len(word)) + 1):
                table.setdefault(word[len(word) - n :], Counter()).update(counts)
        return cls(n_tags, _unpack_counts(_pack_counts(table)), max_suffix=max_suffix)

    def _distribution(self, suffix: str) -> Optional[np.ndarray]:
        if suffix not in self.counts:
            return None
        ids, vals = self.counts[suffix]
        dist = np.zeros(self.n_tags)
        dist[ids] = vals
        return dist / dist.sum()

    def probs(self, word: str) -> Optional[np.ndarray]:
        """P(t | word's suffix) for all tags, or None if the model is empty."""
        if self.base is None:
            return None
        probs = self.base
        for n in range(1, min(self.max_suffix, len(word)) + 1):
            ml = self._distribution(word[len(word) - n :])
            if ml is None:
                break
            probs = (ml + self.theta * probs) / (1.0 + self.theta)
        return probs

    def to_dict(self) -> Dict:
        table = {key: Counter(dict(zip(ids.tolist(), vals.tolist()))) for key, (ids, vals) in self.counts.items()}
        return {"n_tags": self.n_tags, "max_suffix": self.max_suffix, "counts": _pack_counts(table)}

    @classmethod
    def from_dict(cls, data: Dict) -> "SuffixModel":
        return cls(data["n_tags"], _unpack_counts(data["counts"]), max_suffix=data["max_suffix"])


def deleted_interpolation(counts: List[np.ndarray]) -> np.ndarray:
    """TnT's lambdas for interpolating unigram, ..., n-gram estimates.

    counts (List[ndarray]): n-gram count arrays of orders 1..n over the same
        outcomes, the last axis being the predicted tag; counts[k] has k + 1 axes.
    RETURNS (ndarray): lambdas of shape (n,), summing to 1.

    For every n-gram with a non-zero count f, each order k gets the estimate
    (f_k(context, t) - 1) / (f_k(context) - 1) (0 if the denominator is 0),
    and f is added to the lambda of the largest estimate; ties share f evenly.
    """
    top = counts[-1]
    n = len(counts)
    idx = np.nonzero(top)
    freq = top[idx].astype(float)
    estimates = np.zeros((n, len(freq)))
    for k, table in enumerate(counts):
        # The k-gram ending in the same tag: drop the leading n - 1 - k context tags.
        sub_idx = idx[n - 1 - k :]
        numer = table[sub_idx].astype(float) - 1.0
        if k == 0:
            denom = np.full(len(freq), table.sum() - 1.0)
        else:
            denom = table.sum(axis=-1)[sub_idx[:-1]].astype(float) - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            estimates[k] = np.where(denom > 0, numer / np.where(denom > 0, denom, 1.0), 0.0)
    is_max = estimates == estimates.max(axis=0, keepdims=True)
    shares = is_max / is_max.sum(axis=0, keepdims=True)
    lambdas = (shares * freq).sum(axis=1)
    return lambdas / lambdas.sum()


class HMM:
    """A TnT-style HMM tagger: see the module docstring.

    tags (List[str]): The tag set. Id len(tags) is the sentence boundary,
        used for both the start context and the end outcome.
    order (int): 1 for bigram transitions P(t_i | t_{i-1}), 2 for trigram
        transitions P(t_i | t_{i-2}, t_{i-1}).
    ngram_counts (List[ndarray]): Tag n-gram counts of orders 1..order+1 over
        the boundary-padded tag sequences; the last axis is the predicted tag.
    lexicon (Dict[str, Tuple[ndarray, ndarray]]): word -> (tag ids, counts).
    suffix_models (Dict[str, SuffixModel]): "upper" and "lower" suffix models
        for unseen capitalised and uncapitalised words.
    rare_max (int): The frequency limit of the words the suffix models learned from.
    lambdas (Optional[Sequence[float]]): Interpolation weights of the unigram,
        ..., (order+1)-gram estimates; by default deleted interpolation.
    """

    def __init__(
        self,
        tags: List[str],
        *,
        order: int,
        ngram_counts: List[np.ndarray],
        lexicon: Dict[str, Tuple[np.ndarray, np.ndarray]],
        suffix_models: Dict[str, SuffixModel],
        rare_max: int,
        lambdas: Optional[Sequence[float]] = None,
    ) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        self.tags = list(tags)
        self.order = order
        self.boundary = len(self.tags)
        self.ngram_counts = [np.asarray(c, dtype=np.int64) for c in ngram_counts]
        self.lexicon = lexicon
        self.suffix_models = suffix_models
        self.rare_max = rare_max
        if lambdas is None:
            lambdas = deleted_interpolation(self.ngram_counts)
        self.lambdas = np.asarray(lambdas, dtype=float)
        with np.errstate(divide="ignore"):  # impossible transitions are -inf
            self.log_trans = np.log(self.transition_probs())
        emission_totals = np.zeros(len(self.tags))
        for ids, vals in lexicon.values():
            emission_totals[ids] += vals
        self.tag_totals = emission_totals
        self.tag_probs = emission_totals / emission_totals.sum()

    @classmethod
    def fit(
        cls,
        sentences: Iterable[TaggedSequence],
        *,
        order: int = 2,
        max_suffix: int = 10,
        rare_max: int = 10,
        lambdas: Optional[Sequence[float]] = None,
    ) -> "HMM":
        """Count from tagged sentences (empty ones are skipped).

        order (int): 1 (bigram) or 2 (trigram transitions).
        max_suffix (int): The longest suffix of the unseen-word model.
        rare_max (int): The suffix models learn from words seen at most this often.
        lambdas (Optional[Sequence[float]]): Fixed interpolation weights instead
            of deleted interpolation.
        """
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}")
        sentences = [(list(w), list(t)) for w, t in sentences if len(w)]
        _check_lengths(sentences)
        tags = _collect_tags(sentences)
        tag_ids = {tag: i for i, tag in enumerate(tags)}
        boundary = len(tags)
        n_states = len(tags) + 1
        ngram_counts = [np.zeros((n_states,) * (k + 1), dtype=np.int64) for k in range(order + 1)]
        for _, sent_tags in sentences:
            padded = np.array([boundary] * order + [tag_ids[t] for t in sent_tags] + [boundary])
            # Every position after the start padding is an outcome: the tags and the end.
            for k, table in enumerate(ngram_counts):
                windows = tuple(padded[order - k + j : len(padded) - k + j] for j in range(k + 1))
                np.add.at(table, windows, 1)
        word_counts = _word_tag_counts(sentences, tag_ids)
        rare = {"upper": {}, "lower": {}}
        for word, counts in word_counts.items():
            if sum(counts.values()) <= rare_max:
                rare["upper" if is_capitalised(word) else "lower"][word] = counts
        suffix_models = {
            key: SuffixModel.fit(words, len(tags), max_suffix=max_suffix) for key, words in rare.items()
        }
        return cls(
            tags,
            order=order,
            ngram_counts=ngram_counts,
            lexicon=_unpack_counts(_pack_counts(word_counts)),
            suffix_models=suffix_models,
            rare_max=rare_max,
            lambdas=lambdas,
        )

    def transition_probs(self) -> np.ndarray:
        """Interpolated P(t | context), shape (n_states,) * (order + 1).

        Where a context was never seen, its term is left out and the other
        lambdas are renormalised, so each seen-or-unseen context still sums to 1.
        """
        n_states = self.boundary + 1
        shape = (n_states,) * (self.order + 1)
        total = np.zeros(shape)
        weight = np.zeros(shape[:-1] + (1,))
        for k, (lam, table) in enumerate(zip(self.lambdas, self.ngram_counts)):
            context_totals = table.sum(axis=-1, keepdims=True).astype(float)
            ml = np.divide(table, context_totals, out=np.zeros(table.shape), where=context_totals > 0)
            seen = (context_totals > 0).astype(float)
            # Broadcast lower orders over the leading context axes they do not have.
            pad = (1,) * (self.order - k)
            total = total + lam * ml.reshape(pad + ml.shape)
            weight = weight + lam * seen.reshape(pad + seen.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), 0.0)

    def emissions(self, words: Sequence[str]) -> List[Emission]:
        """Candidate tag ids and log emission scores per word.

        Known words: log P(w|t) for the tags seen with w. An unseen word that
        starts the sentence or is in capitals is looked up in lower case
        first ("Unlike", "SALES"); this helped on both dev sets. Other unseen
        words: log(P(t|suffix) / P(t)), which is P(w|t) up to a factor that is
        the same for all tags and so does not change the best path.
        """
        out = []
        for i, word in enumerate(words):
            if word not in self.lexicon and (i == 0 or word.isupper()) and word.lower() in self.lexicon:
                word = word.lower()
            if word in self.lexicon:
                ids, vals = self.lexicon[word]
                out.append((ids, np.log(vals / self.tag_totals[ids])))
                continue
            key = "upper" if is_capitalised(word) else "lower"
            other = "lower" if key == "upper" else "upper"
            probs = self.suffix_models[key].probs(word)
            if probs is None:
                probs = self.suffix_models[other].probs(word)
            if probs is None:
                probs = self.tag_probs
            scores = probs / self.tag_probs
            ids = np.flatnonzero(scores > 0)
            out.append((ids, np.log(scores[ids])))
        return out

    def viterbi(self, words: Sequence[str]) -> Tuple[List[int], float]:
        """The best tag ids for words and the log score of that path
        (log P(words, tags) including the end transition, if all words are known)."""
        n = len(words)
        if n == 0:
            return [], 0.0
        lattice = self.emissions(words)
        if self.order == 1:
            return self._viterbi_bigram(lattice)
        return self._viterbi_trigram(lattice)

    def _viterbi_bigram(self, lattice: List[Emission]) -> Tuple[List[int], float]:
        # delta[b]: best score of a path ending in tag cands[i][b].
        cands, scores = lattice[0]
        delta = self.log_trans[self.boundary, cands] + scores
        backptrs = []
        for prev, (cands, scores) in zip(lattice, lattice[1:]):
            step = delta[:, None] + self.log_trans[np.ix_(prev[0], cands)] + scores[None, :]
            best_prev = step.argmax(axis=0)
            delta = step[best_prev, np.arange(len(cands))]
            backptrs.append(best_prev)
        final = delta + self.log_trans[cands, self.boundary]
        index = int(final.argmax())
        path = [index]
        for best_prev in reversed(backptrs):
            index = int(best_prev[index])
            path.append(index)
        path.reverse()
        return [int(lattice[i][0][j]) for i, j in enumerate(path)], float(final.max())

    def _viterbi_trigram(self, lattice: List[Emission]) -> Tuple[List[int], float]:
        # States are tag pairs: delta[a, b] is the best score of a path whose last two
        # tags are (cands[i-1][a], cands[i][b]); before the sentence that is the boundary.
        cands, scores = lattice[0]
        delta = (self.log_trans[self.boundary, self.boundary, cands] + scores)[None, :]
        before, prev = np.array([self.boundary]), cands
        backptrs = []
        for cands, scores in lattice[1:]:
            step = delta[:, :, None] + self.log_trans[np.ix_(before, prev, cands)] + scores[None, None, :]
            best_before = step.argmax(axis=0)
            delta = np.take_along_axis(step, best_before[None], axis=0)[0]
            backptrs.append(best_before)
            before, prev = prev, cands
        final = delta + self.log_trans[np.ix_(before, prev, [self.boundary])][:, :, 0]
        a, b = np.unravel_index(int(final.argmax()), final.shape)
        path = [int(b), int(a)]  # reversed: positions n-1, n-2
        for best_before in reversed(backptrs):
            path.append(int(best_before[path[-1], path[-2]]))
        # The last entry is the start boundary (or, for n == 1, position -1 already).
        path = path[: len(lattice)][::-1]
        return [int(lattice[i][0][j]) for i, j in enumerate(path)], float(final.max())

    def predict_ids(self, words: Sequence[str]) -> List[int]:
        return self.viterbi(words)[0]

    def predict(self, words: Sequence[str]) -> List[str]:
        return [self.tags[i] for i in self.predict_ids(words)]

    def log_score(self, words: Sequence[str], tags: Sequence[str]) -> float:
        """The log score of one given tag sequence, as `viterbi` scores paths."""
        ids = [self.tags.index(tag) for tag in tags]
        total = 0.0
        for (cands, scores), tag in zip(self.emissions(words), ids):
            hit = np.flatnonzero(cands == tag)
            if not len(hit):
                return float("-inf")
            total += float(scores[hit[0]])
        padded = [self.boundary] * self.order + ids + [self.boundary]
        for i in range(self.order, len(padded)):
            total += float(self.log_trans[tuple(padded[i - self.order : i + 1])])
        return total

    def to_dict(self) -> Dict:
        table = {key: Counter(dict(zip(ids.tolist(), vals.tolist()))) for key, (ids, vals) in self.lexicon.items()}
        return {
            "kind": "hmm",
            "tags": self.tags,
            "order": self.order,
            "ngram_counts": self.ngram_counts,
            "lexicon": _pack_counts(table),
            "suffix_models": {key: model.to_dict() for key, model in self.suffix_models.items()},
            "rare_max": self.rare_max,
            "lambdas": self.lambdas,
        }

    @classmethod
    def from_dict(cls, data: Dict) -> "HMM":
        return cls(
            data["tags"],
            order=data["order"],
            ngram_counts=data["ngram_counts"],
            lexicon=_unpack_counts(data["lexicon"]),
            suffix_models={key: SuffixModel.from_dict(value) for key, value in data["suffix_models"].items()},
            rare_max=data["rare_max"],
            lambdas=data["lambdas"],
        )
