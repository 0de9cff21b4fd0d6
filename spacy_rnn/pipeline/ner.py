"""The ``rnn_ner`` component: BIO (or BILUO) entity tagging with a recurrent
encoder and a linear-chain CRF (or a softmax with constrained Viterbi)."""
from typing import Callable, Iterable, List, Literal, Optional, Set

import numpy
from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.training.iob_utils import biluo_tags_to_spans, biluo_to_iob, iob_to_biluo, split_bilu_label
from spacy.util import filter_spans
from spacy.vocab import Vocab
from thinc.api import Config, Model, SequenceCategoricalCrossentropy, set_dropout_rate

from ..models.types import NonNegativeFloat
from ..models.crf import SCHEMES, allowed_transitions, forward_backward, log_mask, pad, tag_names, viterbi
from .base import TRAINED_LABELS, NeuralPipe, check_rehearsable, model_lock, refuse_int8_training, rehearsal_step
from .defaults import encoder_config

DECODERS = ("crf", "softmax")

DEFAULT_CONFIG = (
    """
[model]
@architectures = "spacy_rnn.RNNEntityRecognizer.v1"
nO = null

"""
    # configs/ner.cfg's encoder: less dropout than v2's defaults
    + encoder_config(dropout=0.25, word_dropout=0.05)
)
DEFAULT_MODEL = Config().from_str(DEFAULT_CONFIG)["model"]


@Language.factory(
    "rnn_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_MODEL,
        "scheme": "BIO",
        "decoder": "crf",
        "max_grad_norm": 5.0,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_rnn_ner(
    nlp: Language,
    name: str,
    model: Model,
    scheme: Literal["BIO", "BILUO"],
    decoder: Literal["crf", "softmax"],
    max_grad_norm: NonNegativeFloat,
    scorer: Optional[Callable],
) -> "RNNEntityRecognizer":
    """Create an rnn_ner component.

    model (Model[List[Doc], List[Floats2d]]): Emission scores per token, with a
        "crf" ref holding the transition scores (spacy_rnn.RNNEntityRecognizer.v1).
    scheme (str): "BIO" (IOB2) or "BILUO" tags over the entity labels.
    decoder (str): "crf": CRF negative log-likelihood and Viterbi over learned
        transitions; "softmax": per-token cross-entropy, Viterbi over the
        log-probabilities with only the scheme's constraints.
    max_grad_norm (float): Global gradient-norm clipping before each step; 0 disables.
    scorer (Optional[Callable]): Scoring method (entity P/R/F, also per type).
    """
    return RNNEntityRecognizer(
        nlp.vocab, model, name, scheme=scheme, decoder=decoder, max_grad_norm=max_grad_norm, scorer=scorer
    )


# cfg key: the labels added by add_label to a trained rnn_ner that no update has seen yet.
UNTRAINED = "untrained_labels"


class RNNEntityRecognizer(NeuralPipe, TrainablePipe):
    """Named-entity recognition as constrained sequence labelling.

    Transitions the scheme forbids (O → I-X, B-X → I-Y, start → I-X, and in
    BILUO the rest) get a score of -inf in both training and decoding, so an
    invalid tag sequence can never be produced.
    """

    TRAINED_SETTINGS = ("scheme",)
    CONFIG_SETTINGS = ("max_grad_norm", "decoder")

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "rnn_ner",
        *,
        scheme: str = "BIO",
        decoder: str = "crf",
        max_grad_norm: float = 5.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"[{name}] scheme must be one of {SCHEMES}, got {scheme!r}")
        if decoder not in DECODERS:
            raise ValueError(f"[{name}] decoder must be one of {DECODERS}, got {decoder!r}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer if scorer is not None else get_ner_prf
        self.cfg = {"labels": [], "scheme": scheme, "decoder": decoder, "max_grad_norm": max_grad_norm}
        self._rehearsal_model: Optional[Model] = None  # a copy of the model, set by nlp.resume_training
        self._seen_untrained: Set[str] = set()  # UNTRAINED labels in the gold of updates not yet applied

    @property
    def labels(self):
        return tuple(self.cfg["labels"])

    @property
    def label_data(self):
        return self.labels

    def _n_outputs(self) -> int:
        return len(self.tag_names)

    @property
    def tag_names(self) -> List[str]:
        return tag_names(self.labels, self.cfg["scheme"])

    def add_label(self, label: str) -> int:
        # A tag is its scheme's prefix, "-" and the label, split at the first "-" (spaCy's iob_utils
        # do the same), so a label may hold "-" (WNUT's geo-loc), as spaCy's ner allows.
        if not isinstance(label, str) or not label:
            raise ValueError(f"[{self.name}] entity labels must be non-empty strings, got {label!r}")
        if label in self.labels:
            return 0
        # initialized (its weights drawn; a config's nO alone is not): the output layer and the CRF
        # grow by the new tags' rows, as spaCy's ner's output does
        if self.model.has_ref("output_layer"):
            initialized = self.model.get_ref("output_layer").has_param("W") is True
        else:  # an architecture of one's own
            initialized = self.model.has_dim("nO") is True
        if initialized:
            refuse_int8_training(self.name, self.model)
            if "resize_output" not in self.model.attrs:
                raise ValueError(Errors.E922.format(name=self.name, nO=self.model.get_dim("nO")))
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        if initialized:
            self.model.attrs["resize_output"](self.model, len(self.tag_names))
            self.model.attrs[TRAINED_LABELS] = list(self.labels)
            # not predicted until an update has seen it (spaCy's ner keeps such "unseen classes" too):
            # its tags' zero scores could otherwise beat the trained ones
            self.cfg.setdefault(UNTRAINED, []).append(label)
        return 1

    def _constraints(self, xp):
        start_ok, pair_ok, end_ok = allowed_transitions(self.tag_names)
        return log_mask(start_ok, xp), log_mask(pair_ok, xp), log_mask(end_ok, xp)

    def _crf_scores(self, xp):
        """start, transitions, end with the scheme's forbidden moves at -inf."""
        start_mask, pair_mask, end_mask = self._constraints(xp)
        if self.cfg["decoder"] == "softmax":
            return start_mask, pair_mask, end_mask
        crf = self.model.get_ref("crf")
        return (
            crf.get_param("start").astype("float64") + start_mask,
            crf.get_param("transitions").astype("float64") + pair_mask,
            crf.get_param("end").astype("float64") + end_mask,
        )

    def _predict_batch(self, docs: Iterable[Doc]) -> List[numpy.ndarray]:
        """Decoded tag ids per doc (NeuralPipe.predict calls this per bounded group)."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [numpy.zeros((0,), dtype="int64") for _ in docs]
        emissions = self.model.predict(docs)
        xp = self.model.ops.xp
        if self.cfg["decoder"] == "softmax":
            emissions = [self._log_softmax(xp, e) for e in emissions]
        nonempty = [i for i, doc in enumerate(docs) if len(doc)]
        padded, lengths = pad(xp, [emissions[i] for i in nonempty], len(self.tag_names))
        self._constrain(xp, padded, [docs[i] for i in nonempty])
        paths, _ = viterbi(xp, padded, lengths, *self._crf_scores(xp))
        tag_ids = [numpy.zeros((0,), dtype="int64") for _ in docs]
        for i, path in zip(nonempty, paths):
            tag_ids[i] = path.get() if hasattr(path, "get") else path
        return tag_ids

    def _constrain(self, xp, padded, docs: List[Doc]) -> None:
        """In place in the padded emissions: the tags of labels added since training
        (UNTRAINED) are never decoded, and the tokens of entities already on the docs (an
        entity_ruler's, another component's) are decoded as O, so that the best path predicts
        around them, as spaCy's ner does: the other tokens of a sentence keep their entities
        (set_annotations keeps the preset ones). Tokens blocked with doc.set_ents(blocked=...)
        (B without a type) are not constrained: rnn_ner may put an entity there."""
        untrained = set(self.cfg.get(UNTRAINED, ()))
        if untrained:
            columns = [i for i, tag in enumerate(self.tag_names) if tag != "O" and split_bilu_label(tag)[1] in untrained]
            padded[:, :, xp.asarray(columns)] = -numpy.inf
        outside = self.tag_names.index("O")
        for row, doc in enumerate(docs):
            iob, ent_type = doc.to_array(["ENT_IOB", "ENT_TYPE"]).T
            positions = numpy.flatnonzero(((iob == 1) | (iob == 3)) & (ent_type != 0))  # I or B of an entity
            if len(positions):
                positions = xp.asarray(positions)
                padded[row, positions] = -numpy.inf
                padded[row, positions, outside] = 0.0

    @staticmethod
    def _log_softmax(xp, scores):
        shifted = scores - scores.max(axis=1, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))

    def set_annotations(self, docs: Iterable[Doc], tag_ids: List[numpy.ndarray]) -> None:
        """Set doc.ents from the decoded tags. Entities already on the doc are
        kept: their tokens were decoded as O (_constrain); a
        predicted span that overlaps one anyway (tags given from elsewhere) is dropped."""
        names = self.tag_names
        to_biluo = iob_to_biluo if self.cfg["scheme"] == "BIO" else list
        for doc, ids in zip(docs, tag_ids):
            if len(doc) == 0:
                continue
            predicted = biluo_tags_to_spans(doc, to_biluo([names[i] for i in ids]))
            preset = list(doc.ents)
            taken = {i for span in preset for i in range(span.start, span.end)}
            new = [s for s in predicted if not any(i in taken for i in range(s.start, s.end))]
            doc.set_ents(filter_spans(preset + new), default="outside")

    def update(self, examples: Iterable[Example], **kwargs) -> dict:
        """NeuralPipe.update; an update refused (a diverged loss or gradient) leaves the labels
        added since training as untrained as they were."""
        try:
            return super().update(examples, **kwargs)
        except ValueError:
            self._seen_untrained.clear()
            raise

    def finish_update(self, sgd) -> None:
        """NeuralPipe.finish_update; then the labels added since training that the applied
        updates saw in their gold are predicted (UNTRAINED)."""
        try:
            super().finish_update(sgd)
        except ValueError:
            self._seen_untrained.clear()
            raise
        if self._seen_untrained and self.cfg.get(UNTRAINED):
            self.cfg[UNTRAINED] = [label for label in self.cfg[UNTRAINED] if label not in self._seen_untrained]
        self._seen_untrained.clear()

    def rehearse(self, examples: Iterable[Example], *, drop: float = 0.0, sgd=None, losses: Optional[dict] = None,
                 **config) -> dict:
        """A rehearsal update (nlp.rehearse, after nlp.resume_training): the emissions are pulled
        towards those of the model as it was when training resumed, the squared difference of each
        score over the rows, as spaCy's parser and ner rehearse; tags added since (add_label) are not
        supervised. Refused where NeuralPipe.rehearse is (check_rehearsable)."""
        check_rehearsable(self.name, self.model)
        if losses is None:
            losses = {}
        if self._rehearsal_model is None:
            return losses
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "RNNEntityRecognizer.rehearse")
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return losses
        with model_lock(self):
            set_dropout_rate(self.model, drop)
            guesses, backprop = self.model.begin_update(docs)
            targets = self._rehearsal_model.predict(docs)
            n_rows = sum(len(guess) for guess in guesses)
            d_guesses, loss, n_scores = [], 0.0, 0
            for guess, target in zip(guesses, targets):
                d_guess = self.model.ops.alloc2f(*guess.shape)
                d_guess[:, : target.shape[1]] = (guess[:, : target.shape[1]] - target) / n_rows
                loss += float((d_guess ** 2).sum())
                n_scores += target.size
                d_guesses.append(d_guess)
            backprop(d_guesses)
        if sgd not in (None, False):
            self.finish_update(rehearsal_step(sgd))
        losses[self.name] += loss / max(n_scores, 1)
        return losses

    def _gold_tags(self, example: Example, known) -> List[Optional[str]]:
        """Gold tag per predicted token in the component's scheme; None where
        the annotation is missing (or misaligned, or a label the component
        does not know)."""
        to_scheme = biluo_to_iob if self.cfg["scheme"] == "BIO" else list
        tags = []
        for tag in example.get_aligned_ner():
            tag = to_scheme([tag])[0] if tag not in (None, "-") else None
            tags.append(tag if tag in known else None)
        return tags

    def get_loss(self, examples: Iterable[Example], emissions: List) -> tuple:
        """Negative log-likelihood summed over docs, and its gradient with
        respect to the emissions. For the CRF, gradients of the transition
        scores are added to the "crf" layer here."""
        validate_examples(examples, "RNNEntityRecognizer.get_loss")
        xp = self.model.ops.xp
        names = self.tag_names
        n_tags = len(names)
        gold_tags = [self._gold_tags(eg, set(names)) for eg in examples]
        if self.cfg.get(UNTRAINED):  # labels added since training: predicted once an update with them is applied
            self._seen_untrained.update(split_bilu_label(tag)[1] for tags in gold_tags for tag in tags if tag not in (None, "O"))
        if self.cfg["decoder"] == "softmax":
            return self._softmax_loss(xp, emissions, gold_tags)
        index = {name: i for i, name in enumerate(names)}
        gold = [xp.asarray([index.get(tag, -1) for tag in tags], dtype="int64") for tags in gold_tags]
        d_emissions = [self.model.ops.alloc2f(*e.shape) for e in emissions]
        nonempty = [i for i, e in enumerate(emissions) if len(e)]
        if not nonempty:
            return 0.0, d_emissions
        padded, lengths = pad(xp, [emissions[i] for i in nonempty], n_tags)
        allowed = xp.ones(padded.shape, dtype=bool)
        for row, i in enumerate(nonempty):
            known = gold[i] >= 0
            positions = xp.arange(len(gold[i]))[known]
            allowed[row, positions] = False
            allowed[row, positions, gold[i][known]] = True
        scores = self._crf_scores(xp)
        log_z, unary, pair, first, last = forward_backward(xp, padded, lengths, *scores)
        gold_log_z, gold_unary, gold_pair, gold_first, gold_last = forward_backward(
            xp, padded, lengths, *scores, allowed=allowed
        )
        loss = float((log_z - gold_log_z).sum())
        if numpy.isinf(loss):
            raise ValueError(
                f"[{self.name}] the CRF loss is {loss}: a gold tag sequence breaks the "
                f"{self.cfg['scheme']} constraints, or training diverged (lower the learning rate)"
            )
        d_padded = (unary - gold_unary).astype("float32")
        for row, i in enumerate(nonempty):
            d_emissions[i] = d_padded[row, : len(emissions[i])]
        crf = self.model.get_ref("crf")
        crf.inc_grad("transitions", xp.nan_to_num(pair - gold_pair).astype("float32"))
        crf.inc_grad("start", (first - gold_first).astype("float32"))
        crf.inc_grad("end", (last - gold_last).astype("float32"))
        return loss, d_emissions

    def _softmax_loss(self, xp, emissions, gold_tags):
        """Per-token cross-entropy of the softmax over each token's tag scores
        (Thinc's loss, as spaCy's tagger uses; missing tags have no gradient)."""
        probs = [xp.exp(self._log_softmax(xp, scores)) for scores in emissions]
        loss_func = SequenceCategoricalCrossentropy(names=self.tag_names, normalize=False, missing_value=None)
        d_emissions, loss = loss_func(probs, gold_tags)
        return float(loss), d_emissions

    def _init_labels(self, get_examples: Callable[[], Iterable[Example]], labels) -> None:
        if labels is None:
            labels = sorted({ent.label_ for eg in get_examples() for ent in eg.reference.ents})
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(f"[{self.name}] found no entities in the training examples, so there are no labels to learn")
