"""The ``rnn_textcat`` and ``rnn_textcat_multilabel`` components: spaCy's
TextCategorizer and MultiLabel_TextCategorizer (labels, loss, doc.cats,
scorers, serialization) with a recurrent model that pools the encoder's
token vectors (spacy_rnn.RNNTextClassifier.v1), plus what every spacy_rnn
pipe adds (NeuralPipe: the encoder's word vocabulary from the whole training
corpus, gradient clipping, refusing NaN updates, bounded prediction batches,
clear load errors)."""
from typing import Callable, Iterable, List, Optional

from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer
from spacy.pipeline.textcat import textcat_score
from spacy.pipeline.textcat_multilabel import textcat_multilabel_score
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Config, Model

from ..models.types import NonNegativeFloat, Threshold
from .base import NeuralPipe, refuse_int8_training
from .defaults import DEFAULT_ENCODER_CONFIG

MODEL_CONFIG = """
[model]
@architectures = "spacy_rnn.RNNTextClassifier.v1"
exclusive_classes = {exclusive}
pooling = ["mean", "max"]
bidirectional = null
nO = null

"""
DEFAULT_MODEL = Config().from_str(MODEL_CONFIG.format(exclusive="true") + DEFAULT_ENCODER_CONFIG)["model"]
DEFAULT_MULTILABEL_MODEL = Config().from_str(MODEL_CONFIG.format(exclusive="false") + DEFAULT_ENCODER_CONFIG)["model"]

# spaCy's textcat components report these (cats_score is macro F, or the positive label's F).
SCORE_WEIGHTS = {
    "cats_score": 1.0,
    "cats_score_desc": None,
    "cats_micro_p": None,
    "cats_micro_r": None,
    "cats_micro_f": None,
    "cats_macro_p": None,
    "cats_macro_r": None,
    "cats_macro_f": None,
    "cats_macro_auc": None,
    "cats_f_per_type": None,
}


@Language.factory(
    "rnn_textcat",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_MODEL,
        "threshold": 0.0,
        "max_grad_norm": 5.0,
        "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_rnn_textcat(
    nlp: Language, name: str, model: Model, threshold: Threshold, max_grad_norm: NonNegativeFloat,
    scorer: Optional[Callable],
) -> "RNNTextCategorizer":
    """Create an rnn_textcat: exactly one label per text (doc.cats sums to 1).

    model (Model[List[Doc], Floats2d]): Maps docs to label probabilities,
        e.g. spacy_rnn.RNNTextClassifier.v1 with exclusive_classes = true.
    threshold (float): Unused by exclusive classes (spaCy's scorer reads it).
    max_grad_norm (float): Rescale all gradients together so their L2 norm is at
        most this value before each optimizer step; 0 disables it.
    scorer (Optional[Callable]): spaCy's textcat scorer by default (accuracy-free:
        macro P/R/F, AUC, per-label P/R/F; cats_score is macro F, or the F of
        positive_label for a binary task).
    """
    return RNNTextCategorizer(nlp.vocab, model, name, threshold=threshold, max_grad_norm=max_grad_norm, scorer=scorer)


@Language.factory(
    "rnn_textcat_multilabel",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_MULTILABEL_MODEL,
        "threshold": 0.5,
        "max_grad_norm": 5.0,
        "scorer": {"@scorers": "spacy.textcat_multilabel_scorer.v2"},
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_rnn_textcat_multilabel(
    nlp: Language, name: str, model: Model, threshold: Threshold, max_grad_norm: NonNegativeFloat,
    scorer: Optional[Callable],
) -> "RNNMultiLabelTextCategorizer":
    """Create an rnn_textcat_multilabel: any number of labels per text, each
    with its own probability.

    model (Model[List[Doc], Floats2d]): Maps docs to one probability per label,
        e.g. spacy_rnn.RNNTextClassifier.v1 with exclusive_classes = false.
    threshold (float): A label is predicted when its probability is at least
        this; spaCy's scorer uses it for P/R/F.
    max_grad_norm (float): As for rnn_textcat.
    scorer (Optional[Callable]): spaCy's multilabel textcat scorer by default.
    """
    return RNNMultiLabelTextCategorizer(
        nlp.vocab, model, name, threshold=threshold, max_grad_norm=max_grad_norm, scorer=scorer
    )


class _RNNTextcatMixin(NeuralPipe):
    """What both text classifiers add to spaCy's: labels from the data (sorted),
    the model initialized on label rows, prediction through NeuralPipe's
    bounded batches, and the same output for an empty doc alone or in any
    batch (the pooled vector of an empty doc is zeros)."""

    min_labels = 1
    CONFIG_SETTINGS = ("max_grad_norm", "threshold")

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp=None, labels=None, positive_label=None) -> None:
        refuse_int8_training(self.name, self.model)  # before the cfg changes (NeuralPipe.initialize refuses too)
        self.cfg["positive_label"] = positive_label  # checked against the labels in _init_labels
        NeuralPipe.initialize(self, get_examples, nlp=nlp, labels=labels)

    def _n_outputs(self) -> int:
        return len(self.labels)

    def _init_labels(self, get_examples: Callable[[], Iterable[Example]], labels) -> None:
        self._validate_categories(get_examples())
        if labels is None:
            labels = sorted({label for example in get_examples() for label in example.y.cats})
        for label in labels:
            self.add_label(label)
        if len(self.labels) < self.min_labels:
            hint = ("; if the corpus is read with gold_preproc = true, spaCy gives each sentence of a doc with "
                    "sentence boundaries as a doc of its own, without doc.cats: read it with gold_preproc = false"
                    if not self.labels else "")
            raise ValueError(
                f"[{self.name}] needs at least {self.min_labels} label(s) in doc.cats of the training "
                f"examples, found {list(self.labels)}{hint}"
            )
        positive_label = self.cfg.get("positive_label")
        if positive_label is not None:
            if positive_label not in self.labels:
                raise ValueError(Errors.E920.format(pos_label=positive_label, labels=self.labels))
            if len(self.labels) != 2:
                raise ValueError(Errors.E919.format(pos_label=positive_label, labels=self.labels))

    def _init_model(self, examples: List[Example]) -> None:
        truths, _ = self._examples_to_truth(examples)
        self.model.initialize(X=[eg.x for eg in examples], Y=truths)

    def get_loss(self, examples: Iterable[Example], scores):
        """spaCy's loss, except that a text whose doc.cats holds none of the
        component's labels is unannotated (missing), not "every label 0":
        it gives no gradient, as missing tags do for the taggers."""
        examples = list(examples)
        loss, d_scores = super().get_loss(examples, scores)
        missing = [i for i, eg in enumerate(examples) if not any(label in eg.reference.cats for label in self.labels)]
        if missing:
            d_scores[missing] = 0.0
            loss = float((d_scores**2).mean())
        return loss, d_scores

    def predict(self, docs):
        rows = NeuralPipe.predict(self, docs)
        if not rows:
            return self.model.ops.alloc2f(0, len(self.labels))
        return self.model.ops.xp.stack(rows)

    def _predict_batch(self, docs):
        # Not TextCategorizer.predict, which gives all-zero scores to a batch of empty docs
        # but the model's output to an empty doc among others.
        return self.model.predict(docs)


class RNNTextCategorizer(_RNNTextcatMixin, TextCategorizer):
    """Text classification with exclusive classes, powered by a recurrent network."""

    min_labels = 2  # as spaCy's textcat

    def __init__(self, vocab: Vocab, model: Model, name: str = "rnn_textcat", *, threshold: float = 0.0,
                 max_grad_norm: float = 5.0, scorer: Optional[Callable] = None) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer or textcat_score)
        self.cfg["max_grad_norm"] = max_grad_norm


class RNNMultiLabelTextCategorizer(_RNNTextcatMixin, MultiLabel_TextCategorizer):
    """Multi-label text classification (independent labels), powered by a recurrent network."""

    def __init__(self, vocab: Vocab, model: Model, name: str = "rnn_textcat_multilabel", *, threshold: float = 0.5,
                 max_grad_norm: float = 5.0, scorer: Optional[Callable] = None) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer or textcat_multilabel_score)
        self.cfg["max_grad_norm"] = max_grad_norm
