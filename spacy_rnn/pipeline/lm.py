"""The ``rnn_lm`` component: a left-to-right recurrent word language model.

It sets ``token._.surprisal``, the surprisal of the token given the words
before it in the doc, -log2 p(token | left context), in bits, and
``doc._.perplexity``, 2 ** (mean surprisal of the doc's words). The words are
the tokens that are not whitespace: spaCy makes a token of extra spaces and
line breaks, which a language model trained on running text (train-lm splits
lines on whitespace) never saw as words, so they are neither read nor scored
(their surprisal is None) and formatting does not change a text's
perplexity. A doc without words has perplexity None. Each doc is read on its own, from the zero state
after an ``<eos>`` (as if it began a new sentence); the ``<eos>`` after its
last token is not scored.

Words map to the model's closed vocabulary as spacy_rnn.models.lm_vocab.Vocabulary
does: the token text as it is, else lowercased (``lowercase``) with
number-like tokens replaced by ``number_token`` (the conventions of
Mikolov's PTB: lower case, numbers as ``N``), else ``<unk>``.

Train it with ``nlp.update`` on raw text like any component (every doc is one
sequence), or on a corpus stream with truncated backpropagation through time
by ``python -m spacy_rnn train-lm``, which saves the result as a pipeline
with this component.
"""
import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Token
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model

from ..models.types import NonNegativeFloat, Positive
from ..models.wrappers import (
    sample_from_model,
    set_vocab_rows_in_use,
    torch_language_model,
    vocab_rows_in_use,
)
from ..models.lm_vocab import EOS, EOS_ID, UNK, UNK_ID, Vocabulary
from .base import TRAINED_LABELS, NeuralPipe, model_lock, refuse_int8_training, require_examples

DEFAULT_CONFIG = """
[model]
@architectures = "spacy_rnn.RNNLanguageModel.v1"
cell = "lstm"
width = 200
depth = 2
word_width = 200
vocab_size = 10000
embed_dropout = 0.0
dropout = 0.0
output_dropout = 0.0
tie_weights = false
chunk_len = 256
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_CONFIG)["model"]

Token.set_extension("surprisal", default=None, force=True)
Doc.set_extension("perplexity", default=None, force=True)


def words_of(doc: Doc) -> List[Token]:
    """The tokens the model reads and scores: those that are not whitespace."""
    return [token for token in doc if not token.is_space]


def score_lm(examples: Iterable[Example], **kwargs) -> Dict[str, Optional[float]]:
    """Perplexity over all tokens of the predicted docs (from their
    token._.surprisal), and its inverse, which grows as the model improves
    (spaCy keeps the model with the highest weighted score)."""
    bits = [t._.surprisal for eg in examples for t in eg.predicted if t._.surprisal is not None]
    if not bits:
        return {"lm_perplexity": None, "lm_inverse_perplexity": None}
    perplexity = 2.0 ** (sum(bits) / len(bits))
    return {"lm_perplexity": perplexity, "lm_inverse_perplexity": 1.0 / perplexity}


@Language.factory(
    "rnn_lm",
    assigns=["token._.surprisal", "doc._.perplexity"],
    default_config={
        "model": DEFAULT_MODEL,
        "lowercase": True,
        "number_token": "N",
        "min_word_freq": 1,
        "max_grad_norm": 5.0,
        "scorer": None,
    },
    default_score_weights={"lm_inverse_perplexity": 1.0, "lm_perplexity": None},
)
def make_rnn_lm(
    nlp: Language,
    name: str,
    model: Model,
    lowercase: bool,
    number_token: Optional[str],
    min_word_freq: Positive,
    max_grad_norm: NonNegativeFloat,
    scorer: Optional[Callable],
) -> "RNNLM":
    """Create an rnn_lm.

    model (Model[List[Ints1d], List[Floats1d]]): Maps each doc's word ids to
        the log-probability of each word given the words before it.
    lowercase (bool): Look words up lowercased when not found as they are.
    number_token (Optional[str]): Number-like words are looked up as this
        token ("N" in PTB); null keeps them.
    min_word_freq (int): initialize keeps words seen at least this often in
        the training docs (at most the model's vocab_size, <unk> and <eos> included).
    max_grad_norm (float): Rescale all gradients together so their L2 norm is
        at most this value before each optimizer step; 0 disables it.
    scorer (Optional[Callable]): Scoring method; by default perplexity (score_lm).

    A pipeline holds one rnn_lm: token._.surprisal and doc._.perplexity are
    one attribute each, so a second would overwrite the first's, and each
    would be scored on the last one's (compare two models in two pipelines).
    """
    others = [other for other, pipe in nlp.components if isinstance(pipe, RNNLM)]
    if others:
        raise ValueError(
            f"[{name}] the pipeline already has an rnn_lm, {others[0]!r}: both would write token._.surprisal "
            "and doc._.perplexity, the second over the first, and each would be scored on the last one's "
            "values; compare two language models in two pipelines"
        )
    return RNNLM(
        nlp.vocab,
        model,
        name,
        lowercase=lowercase,
        number_token=number_token,
        min_word_freq=min_word_freq,
        max_grad_norm=max_grad_norm,
        scorer=scorer,
    )


class RNNLM(NeuralPipe, TrainablePipe):
    """A recurrent language model as a pipeline component: annotates
    surprisal and perplexity, trains on raw text, and samples text
    (`generate`). Its labels are the vocabulary, by id: `<unk>`, `<eos>`,
    then the words. NeuralPipe adds bounded prediction batches, a model
    lock, refusal of NaN updates and clear load errors.
    """

    TRAINED_SETTINGS = ("lowercase", "number_token")  # how words map to the vocabulary
    CONFIG_SETTINGS = ("max_grad_norm", "min_word_freq")

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "rnn_lm",
        *,
        lowercase: bool = True,
        number_token: Optional[str] = "N",
        min_word_freq: int = 1,
        max_grad_norm: float = 5.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.cfg = {
            "labels": [],
            "lowercase": lowercase,
            "number_token": number_token,
            "min_word_freq": min_word_freq,
            "max_grad_norm": max_grad_norm,
        }
        self.scorer = scorer if scorer is not None else score_lm
        self._word_vocab: Optional[Vocabulary] = None
        self._word_vocab_of: Optional[list] = None  # the cfg["labels"] list it was built from

    @property
    def labels(self) -> tuple:
        """The vocabulary: word i has id i."""
        return tuple(self.cfg["labels"])

    @property
    def word_vocab(self) -> Vocabulary:
        """The mapping of words to ids; rebuilt when the labels change (initialize, loading)."""
        words = self.cfg["labels"]
        if not words:
            raise ValueError(f"[{self.name}] has no vocabulary: initialize the pipeline or load a trained one")
        if self._word_vocab is None or self._word_vocab_of is not words:
            self._word_vocab = Vocabulary(words, lowercase=self.cfg["lowercase"], number_token=self.cfg["number_token"])
            self._word_vocab_of = words
        return self._word_vocab

    def set_vocabulary(self, words: Sequence[str]) -> None:
        """Use this vocabulary (starting with <unk>, <eos>), e.g. that of a
        model trained by spacy_rnn.training.lm, and initialize the model for it."""
        vocab = Vocabulary(words, lowercase=self.cfg["lowercase"], number_token=self.cfg["number_token"])
        capacity = torch_language_model(self.model).vocab_size
        if len(vocab) > capacity:
            raise ValueError(f"[{self.name}] {len(vocab)} words do not fit the model's vocab_size of {capacity}")
        self.cfg["labels"] = list(vocab.words)
        self.model.initialize()
        set_vocab_rows_in_use(self.model, len(vocab))
        self.model.attrs[TRAINED_LABELS] = list(vocab.words)

    def doc_ids(self, doc: Doc) -> numpy.ndarray:
        """(n_words,) int64 vocabulary id of each word of the doc (0 = <unk>): see words_of."""
        lookup = self.word_vocab.lookup
        words = words_of(doc)
        return numpy.fromiter((lookup(token.text) for token in words), dtype="int64", count=len(words))

    def _predict_batch(self, docs: List[Doc]) -> List[numpy.ndarray]:
        if not docs:
            return []
        return self.model.predict([self.doc_ids(doc) for doc in docs])

    def set_annotations(self, docs: Iterable[Doc], log_probs: Sequence[numpy.ndarray]) -> None:
        for doc, doc_log_probs in zip(docs, log_probs):
            if hasattr(doc_log_probs, "get"):
                doc_log_probs = doc_log_probs.get()
            bits = (-numpy.asarray(doc_log_probs, dtype="float64") / math.log(2)).tolist()
            scores = iter(bits)  # one per word (words_of); whitespace gets None
            for token in doc:
                token._.surprisal = None if token.is_space else next(scores)
            doc._.perplexity = 2.0 ** (sum(bits) / len(bits)) if bits else None

    def get_loss(self, examples: Iterable[Example], log_probs: Sequence[numpy.ndarray]):
        """Mean cross-entropy per token (nats) of the examples' texts, and
        its gradient with respect to each token's log-probability."""
        xp = self.model.ops.xp
        n_tokens = sum(len(lp) for lp in log_probs)
        if n_tokens == 0:
            return 0.0, [lp * 0 for lp in log_probs]
        loss = -float(sum(float(lp.sum()) for lp in log_probs)) / n_tokens
        d_log_probs = [xp.full(lp.shape, -1.0 / n_tokens, dtype=lp.dtype) for lp in log_probs]
        return loss, d_log_probs

    def _model_inputs(self, examples: List[Example]) -> List[numpy.ndarray]:
        return [self.doc_ids(eg.predicted) for eg in examples]

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        words: Optional[Sequence[str]] = None,
    ) -> None:
        """Choose the vocabulary, the most frequent words of the training
        docs (or `words`, e.g. from [initialize.components]), and initialize the model."""
        refuse_int8_training(self.name, self.model)
        require_examples(self.name, get_examples)
        validate_get_examples(get_examples, "RNNLM.initialize")
        if words is None:
            probe = Vocabulary([UNK, EOS], lowercase=self.cfg["lowercase"], number_token=self.cfg["number_token"])
            counts: Dict[str, int] = {}
            for example in get_examples():
                for token in words_of(example.x):
                    word = probe.normalize(token.text)
                    counts[word] = counts.get(word, 0) + 1
            words = Vocabulary.from_counts(
                counts,
                max_size=torch_language_model(self.model).vocab_size,
                min_freq=self.cfg["min_word_freq"],
            ).words
        self.set_vocabulary(words)

    def _check_labels_match(self, where: str) -> None:
        if not self.cfg["labels"]:
            return
        rows = vocab_rows_in_use(self.model)
        if rows != len(self.cfg["labels"]):
            raise ValueError(
                f"[{self.name}] the labels (vocabulary) in {where} do not match the weights: "
                f"{len(self.cfg['labels'])} words, but the weights use {rows} rows"
            )

    def generate(
        self,
        prompt: Union[str, Doc, Sequence[str]] = "",
        n_words: int = 50,
        *,
        temperature: float = 1.0,
        seed: int = 0,
        allow_unk: bool = False,
    ) -> str:
        """Sample n_words after the prompt (a Doc, a list of words, or a text
        split on whitespace). The same seed gives the same text; temperature 0
        takes the most likely word each time; <unk> is never sampled unless
        allow_unk. Words are separated by spaces, and <eos> ends a line."""
        if n_words < 0:
            raise ValueError(f"n_words must be >= 0, got {n_words}")
        if isinstance(prompt, str):
            words = prompt.split()
        else:  # a Doc, a Span, tokens or strings; whitespace tokens are not words (words_of)
            words = [getattr(w, "text", w) for w in prompt if not getattr(w, "is_space", False)]
        prompt_ids = [self.word_vocab.lookup(w) for w in words]
        with model_lock(self):
            ids = sample_from_model(
                self.model, prompt_ids, n_words, temperature=temperature, seed=seed,
                banned_ids=() if allow_unk else (UNK_ID,),
            )
        out = []
        for i in ids:
            out.append("\n" if i == EOS_ID else self.labels[i])
        return " ".join(out).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")



def generate(
    nlp: Language,
    prompt: str = "",
    n_words: int = 50,
    temperature: float = 1.0,
    seed: int = 0,
    *,
    component: Optional[str] = None,
    allow_unk: bool = False,
) -> str:
    """Sample text from the pipeline's rnn_lm after `prompt` (tokenized by
    nlp.make_doc). The same seed gives the same text. Returns only the
    generated words (see RNNLM.generate)."""
    if component is None:
        found = [name for name, pipe in nlp.pipeline if isinstance(pipe, RNNLM)]
        if not found:
            raise ValueError(f"the pipeline has no rnn_lm component: {nlp.pipe_names}")
        component = found[0]
    pipe = nlp.get_pipe(component)
    return pipe.generate(nlp.make_doc(prompt), n_words, temperature=temperature, seed=seed, allow_unk=allow_unk)
