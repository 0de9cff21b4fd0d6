"""Choosing every recurrent encoder's word vocabulary from the whole training
corpus at `nlp.initialize`, whichever component owns the encoder.

rnn_tagger and rnn_ner choose their own encoder's vocabulary in their
`initialize`, from the examples spaCy passes them (the training corpus). A
component that is not ours, such as spaCy's `tok2vec` whose model other
components listen to, passes its model only a 10-doc sample, and spaCy's
initialize protocol gives a model nothing else. The one place in that protocol
that runs for the whole pipeline and can reach the training corpus is an
`[initialize]` callback: it receives `nlp`, whose config names the training
corpus (`[training] train_corpus`), and it runs before the components are
initialized, so each encoder starts training with its final vocabulary. That
is why this is a `before_init` callback and not, say, a reader argument of the
architecture: the architecture would have to name the corpus again in every
encoder block, and would read it at `spacy.load` time too.
"""
from typing import Callable, Optional

from spacy.language import Language
from spacy.util import registry, resolve_dot_names

from ..models.featurize import has_word_vocab, init_word_vocab


def init_word_vocabularies(nlp: Language, corpus: Optional[str] = None) -> None:
    """Choose the word vocabulary of every encoder in the enabled components
    that do not choose it themselves, from the corpus the config names
    (`corpus`, a dot name such as "corpora.train"; by default the config's
    `[training] train_corpus`). Prints one line per encoder."""
    owners = [
        (name, pipe) for name, pipe in nlp.pipeline
        if not getattr(pipe, "chooses_word_vocab", False) and hasattr(pipe, "model") and has_word_vocab(pipe.model)
    ]
    if not owners:
        return
    config = nlp.config.interpolate()
    (reader,) = resolve_dot_names(config, [corpus or config["training"]["train_corpus"]])
    docs = [example.x for example in reader(nlp)]
    for name, pipe in owners:
        report_word_vocab(name, init_word_vocab(pipe.model, docs))


def report_word_vocab(component: str, stats) -> None:
    """Print what choosing the vocabulary did, one line per encoder."""
    for item in stats:
        print(f"\u2139 {item.describe(component)}", flush=True)  # one line, unwrapped, in spaCy's style


@registry.callbacks("spacy_rnn.init_word_vocabularies.v1")
def make_init_word_vocabularies(corpus: str = "") -> Callable[[Language], Language]:
    """For [initialize.before_init]: choose the word vocabulary of every
    spacy_rnn encoder, e.g. one owned by spaCy's tok2vec, from the whole
    training corpus (see init_word_vocabularies).

    corpus (str): dot name of the corpus reader; by default [training] train_corpus.
    """

    def before_init(nlp: Language) -> Language:
        init_word_vocabularies(nlp, corpus or None)
        return nlp

    return before_init
