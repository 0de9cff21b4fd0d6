"""The ``rnn_tagger`` component: spaCy's Tagger with a recurrent model, a
choice of the annotated attribute (PTB ``tag_`` or UPOS ``pos_``) and
global-norm gradient clipping."""
import warnings
from functools import partial
from typing import Callable, Iterable, List, Optional, Set

from spacy.language import Language
from spacy.pipeline import Tagger
from spacy.scorer import Scorer
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, SequenceCategoricalCrossentropy

from ..models.types import NonNegativeFloat, Probability, TokenAttr
from .base import NeuralPipe
from .defaults import encoder_config

TOKEN_ATTRS = ("tag", "pos")

DEFAULT_CONFIG = (
    """
[model]
@architectures = "spacy_rnn.RNNTagger.v1"
nO = null

"""
    # configs/tagger_mingru.cfg's encoder: the minGRU with output gates and the short convolution,
    # 128 character filters, word dropout 0.2 (chosen on EWT dev; the tagger benchmark), trained
    # with bfloat16 projections where the CPU has native bfloat16 products.
    + encoder_config(cell="mingru", word_dropout=0.2, char_filters=128, output_gate=True, short_conv=True,
                     bf16_training=True)
)
DEFAULT_MODEL = Config().from_str(DEFAULT_CONFIG)["model"]


def _aligned_labels(example: Example, attr: str) -> List[Optional[str]]:
    """The reference's labels (strings) aligned to the predicted tokens, as
    Example.get_aligned(attr, as_string=True) gives them. When both docs have
    the same tokens (training with gold_preproc, or any doc made from the
    reference's words) the alignment is the identity and the labels are read
    straight from the reference's array: spaCy's alignment walks every token
    of both docs in Python, a cost paid again for each copy of an example
    spaCy's update makes."""
    predicted, reference = example.predicted, example.reference
    if len(predicted) == len(reference) and (predicted.to_array("ORTH") == reference.to_array("ORTH")).all():
        strings = reference.vocab.strings
        return [strings[value] for value in reference.to_array(attr).tolist()]
    return example.get_aligned(attr, as_string=True)


def score_token_attr(examples: Iterable[Example], attr: str, **kwargs):
    return Scorer.score_token_attr(examples, attr, **kwargs)


def warn_unweighted_score(nlp: Optional[Language], name: str, attr: str) -> None:
    """At initialize, for a tagger scored as `{attr}_acc` by its default scorer: warn if
    [training.score_weights] gives that score no weight while giving others some. A factory's
    default score weights are fixed (tag_acc 1.0, pos_acc null), so a tagger built with
    token_attr = "pos" from Python, or a second one for UPOS, left spacy train choosing model-best
    by a score no component produced (0.0 at every evaluation)."""
    if nlp is None:
        return
    weights = (nlp.config.get("training") or {}).get("score_weights") or {}
    key = f"{attr}_acc"
    if not weights.get(key) and any(weights.values()):
        warnings.warn(
            f"[{name}] is scored as {key}, which [training.score_weights] gives no weight ({key} = "
            f"{weights.get(key)!r}): spacy train would choose model-best by other scores; set {key} = 1.0 "
            "there (and tag_acc = null if no component sets tags)",
            stacklevel=3,
        )


@Language.factory(
    "rnn_tagger",
    assigns=["token.tag", "token.pos"],
    default_config={
        "model": DEFAULT_MODEL,
        "token_attr": "tag",
        "max_grad_norm": 5.0,
        "overwrite": False,
        "neg_prefix": "!",
        "label_smoothing": 0.0,
        "scorer": None,
    },
    default_score_weights={"tag_acc": 1.0, "pos_acc": None},
)
def make_rnn_tagger(
    nlp: Language,
    name: str,
    model: Model,
    token_attr: TokenAttr,
    max_grad_norm: NonNegativeFloat,
    overwrite: bool,
    neg_prefix: str,
    label_smoothing: Probability,
    scorer: Optional[Callable],
) -> "RNNTagger":
    """Create an rnn_tagger.

    model (Model[List[Doc], List[Floats2d]]): Maps docs to tag probabilities.
    token_attr (str): "tag" writes Token.tag_ (e.g. PTB tags) and reports tag_acc;
        "pos" writes Token.pos_ (UPOS) and reports pos_acc.
    max_grad_norm (float): Rescale all gradients together so their L2 norm is at
        most this value before each optimizer step; 0 disables it.
    overwrite (bool): Overwrite tags that are already set.
    neg_prefix (str): Prefix of negative (forbidden) tags in partial annotation.
    label_smoothing (float): Label smoothing of the cross-entropy loss.
    scorer (Optional[Callable]): Scoring method; by default token accuracy of token_attr.
    """
    return RNNTagger(
        nlp.vocab,
        model,
        name,
        token_attr=token_attr,
        max_grad_norm=max_grad_norm,
        overwrite=overwrite,
        neg_prefix=neg_prefix,
        label_smoothing=label_smoothing,
        scorer=scorer,
    )


class RNNTagger(NeuralPipe, Tagger):
    """Part-of-speech tagger powered by a recurrent network.

    It shares spaCy's Tagger API (labels, predict, update, serialization) and
    adds `token_attr` ("tag" or "pos") and global-norm gradient clipping.
    NeuralPipe adds bounded prediction batches, a model lock (safe to
    share between threads), refusal of NaN updates and clear load errors.
    """

    TRAINED_SETTINGS = ("token_attr",)
    CONFIG_SETTINGS = ("max_grad_norm", "overwrite", "neg_prefix", "label_smoothing")

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "rnn_tagger",
        *,
        token_attr: str = "tag",
        max_grad_norm: float = 5.0,
        overwrite: bool = False,
        neg_prefix: str = "!",
        label_smoothing: float = 0.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        if token_attr not in TOKEN_ATTRS:
            raise ValueError(
                f"[{name}] token_attr must be one of {TOKEN_ATTRS}, got {token_attr!r}"
            )
        self._default_scorer = scorer is None
        if scorer is None:
            scorer = partial(score_token_attr, attr=token_attr)
        super().__init__(
            vocab,
            model,
            name,
            overwrite=overwrite,
            scorer=scorer,
            neg_prefix=neg_prefix,
            label_smoothing=label_smoothing,
        )
        self.cfg["token_attr"] = token_attr
        self.cfg["max_grad_norm"] = max_grad_norm

    @property
    def token_attr(self) -> str:
        return self.cfg["token_attr"]

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None,
                   labels=None) -> None:
        super().initialize(get_examples, nlp=nlp, labels=labels)
        if self._default_scorer:
            warn_unweighted_score(nlp, self.name, self.token_attr)

    def _n_outputs(self) -> int:
        return len(self.labels)

    def _gold_labels(self, example: Example, known: Set[str]) -> List[Optional[str]]:
        """Gold labels aligned to the predicted tokens; None where missing,
        and also for a label the tagger does not know (one never seen in
        training, e.g. at evaluation time), which has no output to train."""
        aligned = _aligned_labels(example, self.token_attr.upper())
        neg_prefix = self.cfg["neg_prefix"]
        gold = []
        for label in aligned:
            base = label[len(neg_prefix) :] if neg_prefix and label and label.startswith(neg_prefix) else label
            gold.append(label if label and base in known else None)
        return gold

    def set_annotations(self, docs, batch_tag_ids) -> None:
        if self.token_attr == "tag":
            # spaCy's Tagger stores a tag as the hash of its label; a doc from
            # another Vocab needs the label strings in its own StringStore.
            for vocab in {id(doc.vocab): doc.vocab for doc in docs if doc.vocab is not self.vocab}.values():
                for label in self.labels:
                    vocab.strings.add(label)
            return super().set_annotations(docs, batch_tag_ids)
        labels = self.labels
        overwrite = self.cfg["overwrite"]
        for doc, tag_ids in zip(docs, batch_tag_ids):
            if hasattr(tag_ids, "get"):
                tag_ids = tag_ids.get()
            for token, tag_id in zip(doc, tag_ids):
                if overwrite or token.pos == 0:
                    token.pos_ = labels[tag_id]

    def get_loss(self, examples: Iterable[Example], scores):
        validate_examples(examples, "RNNTagger.get_loss")
        loss_func = SequenceCategoricalCrossentropy(
            names=self.labels,
            normalize=False,
            neg_prefix=self.cfg["neg_prefix"],
            label_smoothing=self.cfg["label_smoothing"],
        )
        known = set(self.labels)
        truths = [self._gold_labels(eg, known) for eg in examples]
        d_scores, loss = loss_func(scores, truths)
        return float(loss), d_scores

    def _init_labels(self, get_examples: Callable[[], Iterable[Example]], labels) -> None:
        if labels is None:
            found = set()
            for example in get_examples():
                for token in example.y:
                    label = getattr(token, f"{self.token_attr}_")
                    if label:
                        found.add(label)
            labels = sorted(found)
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"[{self.name}] found no '{self.token_attr}' annotation in the training "
                "examples, so there are no labels to learn"
            )
