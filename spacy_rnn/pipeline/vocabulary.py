"""The `[initialize.before_init]` callback for pipelines whose recurrent
encoder is owned by a component that is not ours (e.g. spaCy's `tok2vec`,
which other components listen to): it chooses every such encoder's word
vocabulary from the whole training corpus, and checks that every listener of
such an encoder has the encoder's output width.

The word vocabulary: rnn_tagger and rnn_ner choose their own encoder's
vocabulary in their `initialize`, from the examples spaCy passes them (the
training corpus). A component that is not ours, such as spaCy's `tok2vec`,
passes its model only a 10-doc sample, and spaCy's initialize protocol gives a
model nothing else. The one place in that protocol that runs for the whole
pipeline and can reach the training corpus is an `[initialize]` callback: it
receives `nlp`, whose config names the training corpus (`[training]
train_corpus`), and it runs before the components are initialized, so each
encoder starts training with its final vocabulary. That is why this is a
`before_init` callback and not, say, a reader argument of the architecture:
the architecture would have to name the corpus again in every encoder block,
and would read it at `spacy.load` time too.

The listener widths: a listener (spacy.Tok2VecListener.v1) declares the
width of the vectors it receives, and the listening component sizes its first
layer from it; the encoder's output is 2 * width when bidirectional. spaCy
does not compare the two: a mismatch initializes without complaint and fails
at the first prediction or update with a bare shape error from the matrix
product (e.g. "Shape mismatch for blis.gemm: (5, 256), (128, 50)"), naming no
component or setting. The check needs the pipeline (which components listen
to which encoder), and a model's own initialize sees only itself; the
component's `initialize` would cover only our components, not spaCy's tagger
or parser. This callback sees the whole pipeline, runs after
`nlp._link_components()` has filled each tok2vec's public `listener_map`
(add_pipe, spacy.load/from_config and spacy train's init_nlp all link before
initialize), and before any component is initialized, so a mismatch fails
first, naming both widths. Every config whose tok2vec is a spacy_rnn encoder
needs this callback for the vocabulary anyway (without it, initialize warns
and says to add it), so the check runs wherever the vocabulary is chosen.

`spacy pretrain` initializes the pipeline with every component disabled,
then pretrains the `[pretraining] component`'s encoder, whose word table must
be chosen by then (the pretrained rows belong to those words). When no
component is enabled, the callback therefore chooses the vocabulary of every
encoder that has none yet, from the `[pretraining] corpus` (the raw text
being pretrained on). `[initialize] init_tok2vec` later loads that vocabulary
with the pretrained weights, so in training the callback leaves the
vocabulary of the pretrained layer to it.
"""
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Model

from ..models.featurize import has_word_vocab, init_word_vocab
from ..models.types import NonNegative

# A streamed training corpus ([training] max_epochs = -1) has no end: its first this many docs
# choose the vocabulary unless the callback's max_docs says otherwise (spaCy initializes the
# components from the first 100 examples of such a corpus).
STREAMED_DOCS = 100_000


# word_vocab_source of a vocabulary chosen by choose_word_vocabularies: the callback leaves it.
GIVEN = "given"


def choose_word_vocabularies(nlp: Language, docs: Iterable[Union[Doc, Example]]) -> None:
    """From Python, what the `[initialize.before_init]` callback
    spacy_rnn.init_word_vocabularies.v1 does from the config's corpus: call it
    before `nlp.initialize`, with the training docs or examples (their
    reference docs are counted). Sets every spacy_rnn.Tok2VecListener.v1 width
    left out (and checks the others), then chooses the word vocabulary of
    every encoder owned by a component that does not choose its own (e.g.
    spaCy's tok2vec) from `docs`, read once. Prints one line per encoder. The
    callback, if the config has it, then leaves these vocabularies alone."""
    check_listener_widths(nlp)
    owners = _vocabulary_owners(nlp, pretraining_run=False)
    if owners:
        _choose(owners, (_reference(item) for item in docs), source=GIVEN)


def _reference(item: Union[Doc, Example]) -> Doc:
    if isinstance(item, Example):
        return item.reference
    if not isinstance(item, Doc):
        raise TypeError(f"choose_word_vocabularies counts the words of Docs or Examples, got a {type(item).__name__}")
    return item


def _choose(owners: List[Tuple[str, Model]], docs: Iterable[Doc], source: str = "corpus") -> None:
    """One pass over docs for all owners' encoders (their counts are kept, not the docs)."""
    stats = init_word_vocab([model for _, model in owners], docs, source=source)
    position = 0
    for name, model in owners:
        n_encoders = sum(1 for node in model.walk() if node.name == "doc_features")
        report_word_vocab(name, stats[position : position + n_encoders])
        position += n_encoders


def _vocabulary_owners(nlp: Language, *, pretraining_run: bool) -> List[Tuple[str, Model]]:
    """The components (name, model) whose encoders' vocabulary the callback chooses."""
    if pretraining_run:
        # Our own components do not get their initialize called either.
        candidates = [(name, pipe) for name, pipe in nlp.components if not _vocab_chosen(pipe)]
    else:
        candidates = [(name, pipe) for name, pipe in nlp.pipeline if not getattr(pipe, "chooses_word_vocab", False)]
    owners = [
        (name, pipe.model) for name, pipe in candidates
        if isinstance(getattr(pipe, "model", None), Model) and has_word_vocab(pipe.model) and not _given(pipe.model)
    ]
    if not pretraining_run:
        owners = [(name, model) for name, model in owners if not takes_pretrained_vocab(nlp, name, model)]
    return owners


def init_word_vocabularies(nlp: Language, corpus: Optional[str] = None, max_docs: int = 0) -> None:
    """Choose the word vocabulary of every encoder in the enabled components
    that do not choose it themselves, from the corpus the config names
    (`corpus`, a dot name such as "corpora.train"; by default the config's
    `[training] train_corpus`), read once: its first `max_docs` docs if not 0,
    else all of it (the first STREAMED_DOCS of a streamed training corpus,
    [training] max_epochs = -1). Prints one line per encoder.

    With no component enabled (`spacy pretrain`), it chooses for every
    component whose encoder has no vocabulary yet, by default from the
    `[pretraining] corpus`. An encoder that `[initialize] init_tok2vec` will
    load is left alone: its vocabulary comes with the pretrained weights."""
    config = nlp.config.interpolate()
    pretraining = config.get("pretraining") or {}
    pretraining_run = bool(nlp.components) and not nlp.pipeline
    owners = _vocabulary_owners(nlp, pretraining_run=pretraining_run)
    if not owners:
        return
    training = config.get("training") or {}
    default_corpus = (pretraining.get("corpus") if pretraining_run else None) or training["train_corpus"]
    dot_name = corpus or default_corpus
    streamed = not pretraining_run and dot_name == training["train_corpus"] and training.get("max_epochs") == -1
    limit = max_docs or (STREAMED_DOCS if streamed else 0)
    if streamed and not max_docs:
        print(f"\u2139 word vocabulary: from the first {limit:,} docs of the streamed training corpus "
              "([training] max_epochs = -1; max_docs in [initialize.before_init] sets how many)", flush=True)
    docs = (example.x for example in _corpus_reader(config, dot_name)(nlp))
    _choose(owners, islice(docs, limit) if limit else docs)


def _corpus_reader(config, dot_name: str) -> Callable:
    """The corpus reader the config's block `dot_name` (e.g. "corpora.train") builds, that block
    alone (spaCy's resolve_dot_names builds its whole section: under `spacy pretrain` the train and
    dev readers too, whose paths are then null, E913). A reader without its file (paths.train
    null: a pipeline initialized from Python) is refused, pointing to choose_word_vocabularies."""
    block = config
    for part in dot_name.split("."):
        if not isinstance(block, dict) or part not in block:
            raise ValueError(f"spacy_rnn.init_word_vocabularies.v1: the config has no [{dot_name}] corpus to read")
        block = block[part]
    if not isinstance(block, dict):
        raise ValueError(f"spacy_rnn.init_word_vocabularies.v1: [{dot_name}] is not a corpus reader block")
    if "path" in block and block["path"] is None:
        raise ValueError(
            f"spacy_rnn.init_word_vocabularies.v1 reads the training corpus [{dot_name}], whose path is null "
            "(e.g. nlp.initialize from Python, or no --paths.train): give the path, or, from Python, call "
            "spacy_rnn.choose_word_vocabularies(nlp, docs) before nlp.initialize instead of the callback"
        )
    return registry.resolve({"reader": block})["reader"]


def takes_pretrained_vocab(nlp: Language, name: str, model: Model) -> bool:
    """Whether `[initialize] init_tok2vec` will load the encoder(s) of the
    component `name` (its model, `model`): their vocabulary comes with the
    pretrained weights, loaded after the components' initialize. If so, marks
    it, so that initialize does not choose one from the corpus or fall back to
    (and warn about) the sample meanwhile, and prints so."""
    pretrained = _init_tok2vec_target(nlp, nlp.config.interpolate())
    if pretrained is None or not _feature_ids(model) <= _feature_ids(pretrained):
        return False
    for node in model.walk():
        if node.name == "doc_features":
            node.attrs["word_vocab_source"] = "pretrained"
    print(f"\u2139 [{name}] word vocabulary: from the pretrained weights ([initialize] init_tok2vec)", flush=True)
    return True


def _given(model: Model) -> bool:
    """Whether choose_word_vocabularies chose the vocabulary of every encoder in the model."""
    sources = [node.attrs.get("word_vocab_source") for node in model.walk() if node.name == "doc_features"]
    return bool(sources) and all(source == GIVEN for source in sources)


def _feature_ids(model: Model) -> set:
    return {id(node) for node in model.walk() if node.name == "doc_features"}


def _vocab_chosen(pipe) -> bool:
    """Whether every encoder of the pipe has its word vocabulary (e.g. loaded from disk)."""
    model = getattr(pipe, "model", None)
    if not isinstance(model, Model):
        return True
    return all(node.attrs.get("word_vocab_source") for node in model.walk() if node.name == "doc_features")


def _init_tok2vec_target(nlp: Language, config) -> Optional[Model]:
    """The layer `[initialize] init_tok2vec` will load pretrained weights
    into (spaCy's init_tok2vec), or None."""
    if not (config.get("initialize") or {}).get("init_tok2vec"):
        return None
    pretraining = config.get("pretraining") or {}
    component = pretraining.get("component")
    if not component or component not in nlp.component_names:
        return None
    layer = nlp.get_pipe(component).model
    if pretraining.get("layer"):
        layer = layer.get_ref(pretraining["layer"]) if layer.has_ref(pretraining["layer"]) else None
    return layer


def listener_width_errors(nlp: Language) -> List[str]:
    """One message per listener whose width is not the output width of the
    spacy_rnn encoder it listens to (see the module docstring). A listener
    without a width (spacy_rnn.Tok2VecListener.v1, width = null) gets the
    encoder's."""
    config = nlp.config.interpolate()
    errors = []
    for name, pipe in nlp.components:
        listener_map: Dict[str, list] = getattr(pipe, "listener_map", None) or {}
        model = getattr(pipe, "model", None)
        if not listener_map or not isinstance(model, Model) or not has_word_vocab(model):
            continue
        if model.has_dim("nO") is not True:
            continue
        width = model.get_dim("nO")
        for component, listeners in listener_map.items():
            for listener in listeners:
                if listener.has_dim("nO") is None:
                    # spacy_rnn.Tok2VecListener.v1 with width = null: the encoder's width
                    listener.set_dim("nO", width)
                    continue
                if listener.has_dim("nO") is not True or listener.get_dim("nO") == width:
                    continue
                message = (
                    f"[{component}] listens to [{name}] with width {listener.get_dim('nO')}, "
                    f"but {name}'s {_describe_encoder(config, name, width)}"
                )
                sections = _listener_sections(config, component, {name, "*"})
                if len(sections) == 1:
                    message += f": set width = {width} in [{sections[0]}]"
                errors.append(message)
    return errors


def check_listener_widths(nlp: Language) -> None:
    """Raise a ValueError naming both widths if a listener's width is not the
    output width of the spacy_rnn encoder it listens to."""
    errors = listener_width_errors(nlp)
    if errors:
        raise ValueError("\n".join(errors))


def _describe_encoder(config, name: str, width: int) -> str:
    block = ((config.get("components") or {}).get(name) or {}).get("model") or {}
    architecture = block.get("@architectures", "")
    if not architecture.startswith("spacy_rnn.RNNEncoder.") or "width" not in block:
        return f"model outputs {width}"
    if block.get("bidirectional", True):
        return f"{architecture} outputs {width} (2 \u00d7 width {block['width']}, bidirectional)"
    return f"{architecture} outputs {width} (width {block['width']}, not bidirectional)"


def _listener_sections(config, component: str, upstreams: set) -> List[str]:
    """The config sections of the component's listeners of these upstreams."""
    found = []

    def walk(block, path):
        if not isinstance(block, dict):
            return
        if str(block.get("@architectures", "")).split(".")[-2:-1] == ["Tok2VecListener"] and block.get("upstream") in upstreams:
            found.append(".".join(path))
        for key, value in block.items():
            walk(value, path + [key])

    walk(((config.get("components") or {}).get(component)), ["components", component])
    return found


def report_word_vocab(component: str, stats) -> None:
    """Print what choosing the vocabulary did, one line per encoder."""
    for item in stats:
        print(f"\u2139 {item.describe(component)}", flush=True)  # one line, unwrapped, in spaCy's style


@registry.callbacks("spacy_rnn.init_word_vocabularies.v1")
def make_init_word_vocabularies(corpus: str = "", max_docs: NonNegative = 0) -> Callable[[Language], Language]:
    """For [initialize.before_init]: check that every listener of a spacy_rnn
    encoder owned by another component (e.g. spaCy's tok2vec) has the
    encoder's output width, then choose the word vocabulary of every such
    encoder from the whole training corpus (see init_word_vocabularies).

    corpus (str): dot name of the corpus reader; by default [training]
        train_corpus ([pretraining] corpus under `spacy pretrain`).
    max_docs (int): read only the corpus's first max_docs docs; 0: all of it
        (a streamed training corpus, [training] max_epochs = -1: its first 100,000).
    """

    def before_init(nlp: Language) -> Language:
        check_listener_widths(nlp)
        init_word_vocabularies(nlp, corpus or None, max_docs)
        return nlp

    return before_init
