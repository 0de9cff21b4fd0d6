"""Classic count-based taggers as pipeline components: ``most_frequent_tagger``
and ``hmm_tagger`` (TnT-style HMM with Viterbi decoding).

Both learn everything by counting in `initialize`, which `spacy train` calls
before its first step, so `update` is a no-op and one step of `spacy train`
is enough. They write `Token.tag_` or `Token.pos_`, score with spaCy's token
attribute scorer and serialize with srsly (msgpack, no pickle). The numpy
models are in `spacy_rnn.classic.hmm`.
"""
import warnings
from functools import partial
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import srsly
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_get_examples
from spacy.util import ensure_path
from spacy.vocab import Vocab
from thinc.api import Model

from .hmm import HMM, MostFrequentTagModel
from ..models.types import IntRange, NonNegative, TokenAttr
from ..pipeline.base import SavedSettings, load_error, read_json_file, read_msgpack_file, require_examples
from ..pipeline.tagger import TOKEN_ATTRS, score_token_attr, warn_unweighted_score

CountModel = Union[HMM, MostFrequentTagModel]


def _no_model_forward(model: Model, docs: List[Doc], is_train: bool):
    raise NotImplementedError("count-based taggers have no Thinc model; use the pipe's predict")


def _placeholder_model(name: str) -> Model:
    """A parameter-free Thinc model: spaCy's training loop expects `pipe.model`."""
    return Model(name, _no_model_forward)


class CountTagger(SavedSettings, TrainablePipe):
    """Shared logic of the count-based taggers; subclasses define `_fit`."""

    # The counts were made for these (a config giving another at load is refused); overwrite only
    # steers prediction (the saved value is kept, with a warning). See SavedSettings.
    TRAINED_SETTINGS = ("token_attr", "order", "max_suffix", "rare_max")
    CONFIG_SETTINGS = ("overwrite",)

    def __init__(
        self,
        vocab: Vocab,
        name: str,
        *,
        token_attr: str,
        overwrite: bool,
        scorer: Optional[Callable],
        **settings,
    ) -> None:
        if token_attr not in TOKEN_ATTRS:
            raise ValueError(f"[{name}] token_attr must be one of {TOKEN_ATTRS}, got {token_attr!r}")
        model = _placeholder_model(f"{name}_placeholder")
        super().__init__(vocab, model, name, token_attr=token_attr, overwrite=overwrite, **settings)
        self._default_scorer = scorer is None
        self.scorer = scorer if scorer is not None else partial(score_token_attr, attr=token_attr)
        self.counts: Optional[CountModel] = None

    @property
    def token_attr(self) -> str:
        return self.cfg["token_attr"]

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.counts.tags) if self.counts is not None else ()

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    def _fit(self, sentences: List[Tuple[List[str], List[str]]]) -> CountModel:
        raise NotImplementedError

    def _from_dict(self, data: Dict) -> CountModel:
        raise NotImplementedError

    @staticmethod
    def _sentences(doc: Doc) -> List[Sequence]:
        """The doc's sentences if it has boundaries, else the whole doc."""
        if not len(doc):
            return []
        if doc.has_annotation("SENT_START"):
            return list(doc.sents)
        return [doc[:]]

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
    ) -> None:
        """Count from the reference docs. Sentences with a token that lacks
        the annotation are skipped whole, as the transitions through it are unknown.

        labels: the tag set, e.g. from `spacy init labels` ([initialize.components.NAME.labels]).
        A count tagger's tags are those it counts, so every tag in the training data must be
        among them (else a ValueError names the others); labels that never occur there cannot
        be predicted and are left out, with a warning naming them."""
        require_examples(self.name, get_examples)
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        attr = self.token_attr + "_"
        sentences = []
        for example in get_examples():
            for sent in self._sentences(example.reference):
                tags = [getattr(token, attr) for token in sent]
                if all(tags):
                    sentences.append(([token.text for token in sent], tags))
        if not sentences:
            raise ValueError(
                f"[{self.name}] found no sentence fully annotated with '{self.token_attr}' "
                "in the training examples, so there is nothing to count"
            )
        if isinstance(labels, str):
            raise ValueError(f"[{self.name}] labels must be a list of tags, got the string {labels!r}")
        if labels is not None:
            self._check_given_labels(list(labels), {tag for _, tags in sentences for tag in tags})
        self.counts = self._fit(sentences)
        if self._default_scorer:
            warn_unweighted_score(nlp, self.name, self.token_attr)

    def _check_given_labels(self, labels: List[str], counted: Set[str]) -> None:
        """initialize's `labels` against the tags counted in the training data (see initialize)."""
        unlisted = sorted(counted.difference(labels))
        if unlisted:
            raise ValueError(
                f"[{self.name}] the training data has {self.token_attr} values that are not among the labels "
                f"given to initialize: {', '.join(map(repr, unlisted[:10]))}"
                f"{f' and {len(unlisted) - 10} more' if len(unlisted) > 10 else ''}; add them to the labels "
                "(e.g. run spacy init labels on this training corpus again) or leave labels out"
            )
        unseen = sorted(set(labels).difference(counted))
        if unseen:
            warnings.warn(
                f"[{self.name}] labels given to initialize that never occur in the training data are left out "
                f"(a count tagger predicts only the tags it counted): {', '.join(map(repr, unseen))}",
                stacklevel=3,
            )

    def _require_model(self) -> CountModel:
        if self.counts is None:
            raise ValueError(f"[{self.name}] is not initialized; call nlp.initialize() first")
        return self.counts

    def predict(self, docs: Iterable[Doc]) -> List[List[str]]:
        """One tag per token for each doc; each sentence is decoded on its own."""
        counts = self._require_model()
        batch = []
        for doc in docs:
            tags: List[str] = []
            for sent in self._sentences(doc):
                tags.extend(counts.predict([token.text for token in sent]))
            batch.append(tags)
        return batch

    def set_annotations(self, docs: Iterable[Doc], batch_tags: List[List[str]]) -> None:
        overwrite = self.cfg["overwrite"]
        for doc, tags in zip(docs, batch_tags):
            for token, tag in zip(doc, tags):
                if self.token_attr == "tag":
                    if overwrite or not token.tag_:
                        token.tag_ = tag
                elif overwrite or token.pos == 0:
                    token.pos_ = tag

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd=None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """No-op: the counts were taken in `initialize`. Reports a zero loss."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        return losses

    def get_loss(self, examples: Iterable[Example], scores) -> Tuple[float, None]:
        return 0.0, None

    def finish_update(self, sgd) -> None:
        pass

    def add_label(self, label: str) -> int:
        raise NotImplementedError(f"[{self.name}] labels are taken from the training data in initialize")

    # Serialization: cfg and the counts as one msgpack dict.

    def _state(self) -> Dict:
        return {"cfg": self.cfg, "model": self.counts.to_dict() if self.counts is not None else None}

    def _load_state(self, state: Dict, where: str) -> None:
        """Restore cfg and counts; a ValueError naming the component and
        `where` (the file) if the counts are unreadable or their tag ids do
        not match the tag list."""
        try:
            counts = self._from_dict(state["model"]) if state["model"] is not None else None
        except Exception as err:
            raise ValueError(
                f"[{self.name}] cannot load {where}: the labels (tags) do not match the counts "
                f"({type(err).__name__}: {err})"
            ) from None
        if counts is not None:
            problem = _tag_id_problem(counts)
            if problem:
                raise ValueError(f"[{self.name}] cannot load {where}: the labels (tags) do not match the counts: {problem}")
        configured, built = self._configured_settings(), dict(self.cfg)
        self.cfg.update(state["cfg"])
        try:
            self._reconcile_settings(configured, where)
        except ValueError:
            self.cfg.clear()
            self.cfg.update(built)  # refused: the component stays as it was
            raise
        self.counts = counts

    def to_bytes(self, *, exclude=tuple()) -> bytes:
        return srsly.msgpack_dumps(self._state())

    def from_bytes(self, bytes_data: bytes, *, exclude=tuple()) -> "CountTagger":
        where = "the bytes given to from_bytes"
        try:
            state = srsly.msgpack_loads(bytes_data)
            state["cfg"], state["model"]
        except Exception as err:
            raise load_error(self.name, where, err) from None
        self._load_state(state, where)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude=tuple()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        srsly.write_msgpack(path / "model", self._state()["model"])

    def from_disk(self, path: Union[str, Path], *, exclude=tuple()) -> "CountTagger":
        path = ensure_path(path)
        cfg = read_json_file(self.name, path / "cfg")
        model = read_msgpack_file(self.name, path / "model")
        self._load_state({"cfg": cfg, "model": model}, str(path / "model"))
        return self


def _tag_id_problem(counts: CountModel) -> Optional[str]:
    """Why the tag ids in the counts do not fit the tag list, or None."""
    n_tags = len(counts.tags)
    if isinstance(counts, MostFrequentTagModel):
        ids = list(counts.word_tags.values()) + list(counts.class_tags.values()) + [counts.default_tag]
        top = max(ids)
        return f"tag id {top} but {n_tags} tags" if top >= n_tags or min(ids) < 0 else None
    shapes = [table.shape for table in counts.ngram_counts]
    if any(shape != (n_tags + 1,) * len(shape) for shape in shapes):
        return f"{n_tags} tags (+ the boundary) but n-gram counts of shapes {shapes}"
    widths = {model.n_tags for model in counts.suffix_models.values()}
    if widths - {n_tags}:
        return f"{n_tags} tags but suffix models over {sorted(widths)}"
    return None


@Language.factory(
    "most_frequent_tagger",
    assigns=["token.tag", "token.pos"],
    default_config={
        "token_attr": "tag",
        "max_suffix": 2,
        "rare_max": 2,
        "overwrite": False,
        "scorer": None,
    },
    default_score_weights={"tag_acc": 1.0, "pos_acc": None},
)
def make_most_frequent_tagger(
    nlp: Language,
    name: str,
    token_attr: TokenAttr,
    max_suffix: NonNegative,
    rare_max: NonNegative,
    overwrite: bool,
    scorer: Optional[Callable],
) -> "MostFrequentTagger":
    """Create a most_frequent_tagger.

    token_attr (str): "tag" writes Token.tag_ and reports tag_acc; "pos" writes
        Token.pos_ (UPOS) and reports pos_acc.
    max_suffix (int): Unseen words are tagged by the most frequent tag of their
        coarse shape plus their last 1..max_suffix characters (longest seen first).
    rare_max (int): Those word classes are counted over words seen at most this often.
    overwrite (bool): Overwrite tags that are already set.
    scorer (Optional[Callable]): Scoring method; by default token accuracy of token_attr.
    """
    return MostFrequentTagger(
        nlp.vocab,
        name,
        token_attr=token_attr,
        max_suffix=max_suffix,
        rare_max=rare_max,
        overwrite=overwrite,
        scorer=scorer,
    )


class MostFrequentTagger(CountTagger):
    """Tags each known word with its most frequent training tag; unseen words
    get the most frequent tag of their shape/suffix class, else the most
    frequent tag overall."""

    def _fit(self, sentences):
        return MostFrequentTagModel.fit(sentences, max_suffix=self.cfg["max_suffix"], rare_max=self.cfg["rare_max"])

    def _from_dict(self, data):
        return MostFrequentTagModel.from_dict(data)


@Language.factory(
    "hmm_tagger",
    assigns=["token.tag", "token.pos"],
    default_config={
        "token_attr": "tag",
        "order": 2,
        "max_suffix": 10,
        "rare_max": 10,
        "overwrite": False,
        "scorer": None,
    },
    default_score_weights={"tag_acc": 1.0, "pos_acc": None},
)
def make_hmm_tagger(
    nlp: Language,
    name: str,
    token_attr: TokenAttr,
    order: IntRange(1, 2),
    max_suffix: NonNegative,
    rare_max: NonNegative,
    overwrite: bool,
    scorer: Optional[Callable],
) -> "HMMTagger":
    """Create an hmm_tagger (TnT-style HMM, Viterbi decoding per sentence).

    token_attr (str): "tag" writes Token.tag_ and reports tag_acc; "pos" writes
        Token.pos_ (UPOS) and reports pos_acc.
    order (int): 1 for bigram transitions, 2 for trigram transitions; both
        smoothed by deleted interpolation.
    max_suffix (int): The longest suffix of the unseen-word model (TnT: 10).
    rare_max (int): The unseen-word model learns from words seen at most this often (TnT: 10).
    overwrite (bool): Overwrite tags that are already set.
    scorer (Optional[Callable]): Scoring method; by default token accuracy of token_attr.
    """
    if order not in (1, 2):
        raise ValueError(f"[{name}] order must be 1 or 2, got {order!r}")
    return HMMTagger(
        nlp.vocab,
        name,
        token_attr=token_attr,
        order=order,
        max_suffix=max_suffix,
        rare_max=rare_max,
        overwrite=overwrite,
        scorer=scorer,
    )


class HMMTagger(CountTagger):
    """A hidden Markov model tagger in the manner of TnT: interpolated bigram or
    trigram transitions, word emissions, a suffix model for unseen words, and
    Viterbi decoding in log space. Docs with sentence boundaries are decoded
    sentence by sentence."""

    def _fit(self, sentences):
        return HMM.fit(
            sentences, order=self.cfg["order"], max_suffix=self.cfg["max_suffix"], rare_max=self.cfg["rare_max"]
        )

    def _from_dict(self, data):
        return HMM.from_dict(data)
