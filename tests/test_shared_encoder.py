"""spacy_rnn.RNNEncoder.v2 as spaCy's shared tok2vec: spaCy's tagger and
parser and our rnn_tagger listen to one recurrent encoder
(spacy.Tok2VecListener.v1); configs/parser_tagger_rnn.cfg with spacy train
and spacy pretrain. Tiny data, a few update steps."""
import io
import json
import warnings
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus
from spacy.training.initialize import init_nlp
from spacy.util import load_config, load_model_from_config
from thinc.api import Config

from spacy_rnn.models.featurize import has_word_vocab, init_word_vocab
from spacy_rnn.models.wrappers import torch_modules

from .conftest import SMALL_ENCODER

CONFIG_FILE = Path(__file__).parent.parent / "configs" / "parser_tagger_rnn.cfg"

# words, XPOS, UPOS, morphs, heads (absolute), deps
SENTS = [
    (
        ["I", "like", "green", "eggs", "."],
        ["PRP", "VBP", "JJ", "NNS", "."],
        ["PRON", "VERB", "ADJ", "NOUN", "PUNCT"],
        ["Case=Nom|Number=Sing|Person=1|PronType=Prs", "Mood=Ind|Tense=Pres|VerbForm=Fin", "Degree=Pos", "Number=Plur", ""],
        [1, 1, 3, 1, 1],
        ["nsubj", "ROOT", "amod", "obj", "punct"],
    ),
    (
        ["Eat", "blue", "ham", "today", "!"],
        ["VB", "JJ", "NN", "NN", "."],
        ["VERB", "ADJ", "NOUN", "NOUN", "PUNCT"],
        ["Mood=Imp|VerbForm=Fin", "Degree=Pos", "Number=Sing", "Number=Sing", ""],
        [0, 2, 0, 0, 0],
        ["ROOT", "amod", "obj", "obl", "punct"],
    ),
    (
        ["The", "dog", "runs", "fast"],
        ["DT", "NN", "VBZ", "RB"],
        ["DET", "NOUN", "VERB", "ADV"],
        ["Definite=Def|PronType=Art", "Number=Sing", "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", ""],
        [1, 2, 2, 2],
        ["det", "nsubj", "ROOT", "advmod"],
    ),
]

TEXTS = ["I like green eggs .", "The dog runs fast", "Eat blue ham today and the green dog eats the ham !", "x"]

ENCODER_WIDTH = SMALL_ENCODER["width"]  # bidirectional: the encoder outputs 2 * width
ENCODER = "\n".join(
    f"{key} = {value!r}".replace("'", '"').replace("False", "false").replace("True", "true")
    for key, value in {**SMALL_ENCODER, "@architectures": "spacy_rnn.RNNEncoder.v2", "bidirectional": True}.items()
)


def pipeline_config(listener_width: int = 2 * ENCODER_WIDTH) -> str:
    """tok2vec (RNNEncoder.v2) + spaCy's tagger + spaCy's parser + rnn_tagger
    (UPOS), the last three listening to the tok2vec."""
    listener = f'@architectures = "spacy.Tok2VecListener.v1"\nwidth = {listener_width}\nupstream = "tok2vec"'
    return f"""
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["tok2vec", "tagger", "parser", "rnn_tagger"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
{ENCODER}

[components.tagger]
factory = "tagger"

[components.tagger.model]
@architectures = "spacy.Tagger.v2"
nO = null

[components.tagger.model.tok2vec]
{listener}

[components.parser]
factory = "parser"
min_action_freq = 1

[components.parser.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "parser"
extra_state_tokens = false
hidden_width = 16
maxout_pieces = 2
use_upper = true
nO = null

[components.parser.model.tok2vec]
{listener}

[components.rnn_tagger]
factory = "rnn_tagger"
token_attr = "pos"

[components.rnn_tagger.model]
@architectures = "spacy_rnn.RNNTagger.v1"
nO = null

[components.rnn_tagger.model.encoder]
{listener}

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${{paths.train}}
gold_preproc = true

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${{paths.dev}}
gold_preproc = true

[training]
seed = 0
gpu_allocator = null
dropout = 0.0
max_steps = 6
eval_frequency = 3
frozen_components = []
annotating_components = []

[training.batcher]
@batchers = "spacy.batch_by_sequence.v1"
size = 8
get_length = null

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.01
grad_clip = 1.0
L2 = 0.0

[initialize]

[initialize.before_init]
@callbacks = "spacy_rnn.init_word_vocabularies.v1"
"""


def write_corpus(path: Path) -> Path:
    nlp = spacy.blank("en")
    db = DocBin()
    for words, tags, pos, morphs, heads, deps in SENTS:
        db.add(Doc(nlp.vocab, words=words, tags=tags, pos=pos, morphs=morphs, heads=heads, deps=deps))
    db.to_disk(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "train.spacy")


def make_config(corpus: Path, text: str = None, **overrides) -> Config:
    return Config().from_str(
        text or pipeline_config(), overrides={"paths.train": str(corpus), "paths.dev": str(corpus), **overrides}
    )


def train_steps(nlp, corpus: Path, n_steps: int, **update_kwargs) -> list:
    """n_steps updates on the whole tiny corpus; the losses of each step."""
    examples = list(Corpus(str(corpus), gold_preproc=True)(nlp))
    optimizer = nlp.create_optimizer()
    history = []
    for _ in range(n_steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses, **update_kwargs)
        history.append(losses)
    return history


def encoder_state(model) -> dict:
    """Copies of the weights of the (one) torch encoder in a model."""
    (module,) = torch_modules(model)
    return {name: value.detach().clone().numpy() for name, value in module.state_dict().items()}


def thinc_params(model) -> dict:
    return {
        (node.id, name): node.get_param(name).copy()
        for node in model.walk() for name in node.param_names if node.has_param(name)
    }


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(numpy.array_equal(a[k], b[k]) for k in a)


def annotations(docs) -> list:
    return [[(t.tag_, t.pos_, t.head.i, t.dep_) for t in doc] for doc in docs]


@pytest.fixture(scope="module")
def trained_dir(corpus, tmp_path_factory) -> Path:
    """The pipeline trained for 20 steps and saved."""
    nlp = init_nlp(make_config(corpus))
    train_steps(nlp, corpus, 20)
    path = tmp_path_factory.mktemp("trained") / "pipeline"
    nlp.to_disk(path)
    return path


def test_listeners_train_and_the_loss_goes_down(corpus):
    nlp = init_nlp(make_config(corpus))
    tok2vec = nlp.get_pipe("tok2vec")
    assert tok2vec.listening_components == ["tagger", "parser", "rnn_tagger"]
    # rnn_tagger's model holds a listener, not an encoder of its own.
    assert not has_word_vocab(nlp.get_pipe("rnn_tagger").model)
    assert nlp.get_pipe("rnn_tagger").labels == ("ADJ", "ADV", "DET", "NOUN", "PRON", "PUNCT", "VERB")
    before = encoder_state(tok2vec.model)
    history = train_steps(nlp, corpus, 30)
    for name in ("tagger", "parser", "rnn_tagger"):
        assert history[19][name] < 0.5 * history[0][name], (name, [h[name] for h in history])
    # The listeners' gradients reach the shared encoder.
    assert not same(encoder_state(tok2vec.model), before)
    doc = nlp("I like green eggs .")
    assert [t.tag_ for t in doc] == ["PRP", "VBP", "JJ", "NNS", "."]
    assert [t.pos_ for t in doc] == ["PRON", "VERB", "ADJ", "NOUN", "PUNCT"]
    assert [t.head.i for t in doc] == [1, 1, 3, 1, 1]
    assert doc.tensor.shape == (5, 2 * ENCODER_WIDTH)


def test_save_and_load_give_identical_parses_and_tags(trained_dir):
    nlp = spacy.load(trained_dir)
    again = spacy.load(trained_dir)
    assert nlp.get_pipe("tok2vec").listening_components == ["tagger", "parser", "rnn_tagger"]
    docs, docs_again = list(nlp.pipe(TEXTS)), list(again.pipe(TEXTS))
    assert annotations(docs) == annotations(docs_again)
    for doc, doc_again in zip(docs, docs_again):
        numpy.testing.assert_array_equal(doc.tensor, doc_again.tensor)


@pytest.mark.parametrize("changed, expected", [
    ({"depth": 2}, "depth is 2, trained with 1"),
    ({"rows": [100, 200, 40], "char_filters": 4}, r"rows is \[100, 200, 40\], trained with \[100, 200, 50\]; char_filters is 4, trained with \d+"),
])
def test_spacys_tok2vec_names_the_encoder_settings_its_weights_were_not_trained_with(trained_dir, changed, expected):
    """spaCy's tok2vec component loads its model itself (not through a spacy-rnn pipe's checked load):
    a config that changed the encoder's depth or rows failed with torch's "size mismatch" or a layer
    count, naming no setting."""
    message = rf"settings of the model .* are not those its weights were trained with: {expected}; restore"
    with pytest.raises(ValueError, match=message):
        spacy.load(trained_dir, config={"components": {"tok2vec": {"model": changed}}})
    assert spacy.load(trained_dir)("I like green eggs .")[0].tag_


def test_spacys_tok2vec_refuses_a_cell_whose_weights_have_the_same_shapes(corpus, tmp_path):
    """A minGRU with output gates has the weight shapes of a minLSTM without: spaCy's tok2vec loaded
    one's weights into the other without a word and predicted with them."""
    mingru = {"components.tok2vec.model.cell": "mingru", "components.tok2vec.model.output_gate": True}
    nlp = init_nlp(make_config(corpus, **mingru))
    nlp.to_disk(tmp_path / "pipeline")
    swapped = {"components": {"tok2vec": {"model": {"cell": "minlstm", "output_gate": False}}}}
    with pytest.raises(ValueError, match="cell is 'minlstm', trained with 'mingru'; output_gate is False, trained with True"):
        spacy.load(tmp_path / "pipeline", config=swapped)


def test_a_doc_gets_the_same_vectors_alone_and_in_a_batch(trained_dir):
    nlp = spacy.load(trained_dir)
    alone = [nlp(text) for text in TEXTS]
    batched = list(nlp.pipe(TEXTS, batch_size=len(TEXTS)))
    reordered = list(nlp.pipe(list(reversed(TEXTS)), batch_size=2))[::-1]
    for docs in (batched, reordered):
        assert annotations(docs) == annotations(alone)
        for doc, single in zip(docs, alone):
            assert doc.tensor.shape == (len(doc), 2 * ENCODER_WIDTH)
            numpy.testing.assert_allclose(doc.tensor, single.tensor, rtol=0, atol=1e-5)


def sourced_config(corpus: Path, trained_dir: Path, sourced, **training) -> Config:
    config = make_config(corpus)
    for name in sourced:
        config["components"][name] = {"source": str(trained_dir)}
    config["training"].update(training)
    return config


def test_a_frozen_annotating_tok2vec_keeps_its_weights_and_the_listeners_learn(corpus, trained_dir):
    from spacy.training.loop import train

    trained = spacy.load(trained_dir)
    config = sourced_config(
        corpus, trained_dir, ["tok2vec"], frozen_components=["tok2vec"], annotating_components=["tok2vec"]
    )
    nlp = init_nlp(config)
    # The sourced encoder is not initialized again: its weights and vocabulary are the saved ones.
    assert same(encoder_state(nlp.get_pipe("tok2vec").model), encoder_state(trained.get_pipe("tok2vec").model))
    heads = {name: thinc_params(nlp.get_pipe(name).model) for name in ("tagger", "parser", "rnn_tagger")}
    train(nlp, None, stdout=io.StringIO(), stderr=io.StringIO())  # spacy train's loop: 6 steps
    assert same(encoder_state(nlp.get_pipe("tok2vec").model), encoder_state(trained.get_pipe("tok2vec").model))
    assert word_rows(nlp, TEXTS[2].split()) == word_rows(trained, TEXTS[2].split())
    for name, params in heads.items():
        assert not same(thinc_params(nlp.get_pipe(name).model), params), name


def test_components_sourced_from_a_saved_pipeline_predict_as_there(corpus, trained_dir):
    trained = spacy.load(trained_dir)
    config = sourced_config(corpus, trained_dir, ["tok2vec", "tagger", "parser", "rnn_tagger"])
    nlp = load_model_from_config(config, auto_fill=True)
    assert nlp.get_pipe("tok2vec").listening_components == ["tagger", "parser", "rnn_tagger"]
    assert annotations(nlp.pipe(TEXTS)) == annotations(trained.pipe(TEXTS))


def test_replace_listeners_gives_the_tagger_its_own_encoder(corpus, trained_dir):
    nlp = spacy.load(trained_dir)
    expected = annotations(nlp.pipe(TEXTS))
    tok2vec = nlp.get_pipe("tok2vec")
    nlp.replace_listeners("tok2vec", "tagger", ["model.tok2vec"])
    tagger_model = nlp.get_pipe("tagger").model
    assert tok2vec.listening_components == ["parser", "rnn_tagger"]
    assert has_word_vocab(tagger_model)
    assert nlp.config["components"]["tagger"]["model"]["tok2vec"]["@architectures"] == "spacy_rnn.RNNEncoder.v2"
    # Right after, the copy predicts what the shared encoder did.
    assert annotations(nlp.pipe(TEXTS)) == expected
    (tagger_module,), (shared_module,) = torch_modules(tagger_model), torch_modules(tok2vec.model)
    assert tagger_module is not shared_module
    # Training the tagger alone changes its copy, not the shared encoder...
    shared = encoder_state(tok2vec.model)
    own = encoder_state(tagger_model)
    train_steps(nlp, corpus, 2, exclude=["tok2vec", "parser", "rnn_tagger"])
    assert same(encoder_state(tok2vec.model), shared)
    assert not same(encoder_state(tagger_model), own)
    # ...and training the listeners changes the shared encoder, not the copy.
    own = encoder_state(tagger_model)
    train_steps(nlp, corpus, 2, exclude=["tagger"])
    assert not same(encoder_state(tok2vec.model), shared)
    assert same(encoder_state(tagger_model), own)


def test_replace_listeners_copy_has_its_own_optimizer_state(corpus, trained_dir):
    nlp = spacy.load(trained_dir)
    nlp.replace_listeners("tok2vec", "tagger", ["model.tok2vec"])
    n_params = len(list(torch_modules(nlp.get_pipe("tok2vec").model)[0].parameters()))
    optimizer = nlp.create_optimizer()
    examples = list(Corpus(str(corpus), gold_preproc=True)(nlp))
    # Two steps: spaCy 3.8's nlp.update calls each component's finish_update
    # right after its update, before the listeners send the tok2vec its
    # gradient, so the shared encoder applies a batch's gradient at the next step.
    nlp.update(examples, sgd=optimizer)
    nlp.update(examples, sgd=optimizer)
    # Adam keeps moments per parameter: both encoders' parameters, plus spaCy's own.
    torch_keys = [key for key in optimizer.mom1 if isinstance(key[1], str) and "." in key[1]]
    assert len(torch_keys) == 2 * n_params, torch_keys


def test_replace_listeners_of_rnn_tagger(corpus, trained_dir, tmp_path):
    nlp = spacy.load(trained_dir)
    expected = annotations(nlp.pipe(TEXTS))
    nlp.replace_listeners("tok2vec", "rnn_tagger", ["model.encoder"])
    assert has_word_vocab(nlp.get_pipe("rnn_tagger").model)
    assert annotations(nlp.pipe(TEXTS)) == expected
    # saved and loaded again (Thinc keeps the chain's name, 'tok2vec-listener>>...', where the config
    # spaCy rewrote builds 'doc_features>>pytorch>>...': the load was refused as another layer)
    nlp.to_disk(tmp_path / "replaced")
    assert annotations(spacy.load(tmp_path / "replaced").pipe(TEXTS)) == expected
    rebuilt = load_model_from_config(nlp.config, auto_fill=True).from_bytes(nlp.to_bytes())
    assert annotations(rebuilt.pipe(TEXTS)) == expected
    train_steps(nlp, corpus, 1)


@pytest.mark.parametrize(
    "listener_width,bidirectional,message",
    [
        (
            ENCODER_WIDTH,
            True,
            f"[tagger] listens to [tok2vec] with width {ENCODER_WIDTH}, but tok2vec's spacy_rnn.RNNEncoder.v2 "
            f"outputs {2 * ENCODER_WIDTH} (2 \u00d7 width {ENCODER_WIDTH}, bidirectional): "
            f"set width = {2 * ENCODER_WIDTH} in [components.tagger.model.tok2vec]",
        ),
        (
            2 * ENCODER_WIDTH,
            False,
            f"[rnn_tagger] listens to [tok2vec] with width {2 * ENCODER_WIDTH}, but tok2vec's spacy_rnn.RNNEncoder.v2 "
            f"outputs {ENCODER_WIDTH} (width {ENCODER_WIDTH}, not bidirectional): "
            f"set width = {ENCODER_WIDTH} in [components.rnn_tagger.model.encoder]",
        ),
    ],
)
def test_a_listener_width_mismatch_fails_at_initialize_naming_both_widths(
    corpus, listener_width, bidirectional, message
):
    config = make_config(
        corpus, pipeline_config(listener_width), **{"components.tok2vec.model.bidirectional": bidirectional}
    )
    with pytest.raises(ValueError) as info:
        init_nlp(config)
    lines = str(info.value).splitlines()
    assert message in lines
    assert len(lines) == 3  # one per listening component
    # The same through nlp.initialize on a pipeline built from the config.
    nlp = load_model_from_config(config, auto_fill=True)
    with pytest.raises(ValueError, match=r"listens to \[tok2vec\] with width"):
        nlp.initialize(lambda: Corpus(str(corpus))(nlp))


# configs/parser_tagger_rnn.cfg


def tiny_corpus_overrides(corpus: Path) -> dict:
    return {"paths.train": str(corpus), "paths.dev": str(corpus), "components.parser.min_action_freq": 1}


def test_the_config_trains_with_spacy_train(corpus, tmp_path, capsys):
    from spacy.cli.train import train

    overrides = {**tiny_corpus_overrides(corpus), "training.max_steps": 4, "training.eval_frequency": 2}
    train(CONFIG_FILE, tmp_path / "out", overrides=overrides)
    assert "[tok2vec] word vocabulary:" in capsys.readouterr().out
    nlp = spacy.load(tmp_path / "out" / "model-last")
    assert nlp.pipe_names == ["tok2vec", "tagger", "morphologizer", "parser"]
    assert nlp.get_pipe("tok2vec").listening_components == ["tagger", "morphologizer", "parser"]
    assert nlp.get_pipe("tok2vec").model.get_dim("nO") == 512
    doc = nlp("I like green eggs .")
    assert doc.tensor.shape == (5, 512)
    assert all(t.tag_ and t.pos_ and t.dep_ for t in doc)
    assert set(nlp.config["training"]["score_weights"]) >= {"dep_uas", "dep_las", "tag_acc", "pos_acc", "morph_acc", "sents_f"}


# A small encoder for the pretraining tests.
SMALL_OVERRIDES = {
    "components.tok2vec.model.width": 16,
    "components.tok2vec.model.depth": 1,
    "components.tok2vec.model.vocab_size": 100,
    "components.tok2vec.model.min_word_freq": 1,
    "components.tok2vec.model.word_width": 16,
    "components.tagger.model.tok2vec.width": 32,
    "components.morphologizer.model.tok2vec.width": 32,
    "components.parser.model.tok2vec.width": 32,
    "components.parser.model.hidden_width": 16,
    "pretraining.objective.hidden_size": 16,
    "pretraining.max_epochs": 2,
    "corpora.pretrain.min_length": 1,
}

RAW_TEXTS = ["Green cats like blue eggs .", "The cats sleep all day long .", "I like ham ."]


def word_rows(nlp, words):
    (features,) = [node for node in nlp.get_pipe("tok2vec").model.walk() if node.name == "doc_features"]
    return dict(zip(words, features.predict([Doc(nlp.vocab, words=words)]).word_ids.tolist()))


def test_spacy_pretrain_then_init_tok2vec(corpus, tmp_path, capsys):
    from spacy.training.pretrain import pretrain

    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({"text": text}) + "\n" for text in RAW_TEXTS), encoding="utf8")
    overrides = {**tiny_corpus_overrides(corpus), **SMALL_OVERRIDES, "paths.raw_text": str(raw)}
    (tmp_path / "pretrain").mkdir()
    with warnings.catch_warnings():
        # The callback chose the vocabulary from the raw text: no sample fallback. Pretraining is given
        # the raw text only, as the config's comment says (the callback built the whole [corpora]
        # section, train and dev with null paths: E913).
        warnings.filterwarnings("error", message=".*initialization sample only")
        pretrain_overrides = {**SMALL_OVERRIDES, "paths.raw_text": str(raw)}
        pretrain(load_config(CONFIG_FILE, overrides=pretrain_overrides).interpolate(), tmp_path / "pretrain", silent=True)
    weights = tmp_path / "pretrain" / "model-last.bin"
    assert weights.exists() and (tmp_path / "pretrain" / "model1.bin").exists()
    # 13 words in the raw text (of 17 tokens); the training corpus is not read.
    assert "[tok2vec] word vocabulary: 13 words covering 100.0% of training tokens" in capsys.readouterr().out

    plain = init_nlp(load_config(CONFIG_FILE, overrides=overrides))
    assert "[tok2vec] word vocabulary: 14 words" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*initialization sample only")
        nlp = init_nlp(load_config(CONFIG_FILE, overrides={**overrides, "paths.init_tok2vec": str(weights)}))
    assert "[tok2vec] word vocabulary: from the pretrained weights ([initialize] init_tok2vec)" in capsys.readouterr().out
    # The pretrained weights were loaded (the same seed gives the same initial weights)...
    loaded = encoder_state(nlp.get_pipe("tok2vec").model)
    assert not same(loaded, encoder_state(plain.get_pipe("tok2vec").model))
    plain.get_pipe("tok2vec").model.from_bytes(weights.read_bytes())
    assert same(loaded, encoder_state(plain.get_pipe("tok2vec").model))
    # ...with the vocabulary they were pretrained with: "cats" only in the raw text, "dog" only in the corpus.
    rows = word_rows(nlp, ["cats", "like", "dog"])
    assert rows["cats"] > 0 and rows["like"] > 0 and rows["dog"] == 0
    train_steps(nlp, corpus, 2)
    assert all(t.tag_ for t in nlp("I like cats ."))


def test_init_tok2vec_into_an_rnn_tagger_s_own_encoder(corpus, tmp_path, capsys):
    """[pretraining] component = "tagger", layer = "tok2vec" on configs/tagger.cfg: with init_tok2vec, the
    tagger's initialize leaves the vocabulary to the pretrained weights and says so (it chose one from the
    corpus and reported it, then init_tok2vec replaced it)."""
    sections = CONFIG_FILE.read_text(encoding="utf8").split("\n[")
    pretraining = "\n[".join(section for section in sections if section.startswith("pretraining"))
    pretraining = pretraining.replace('component = "tok2vec"', 'component = "tagger"').replace('layer = ""', 'layer = "tok2vec"')
    text = (Path(__file__).parent.parent / "configs" / "tagger.cfg").read_text(encoding="utf8")
    text = text.replace("[pretraining]\n", "[" + pretraining + "\n")
    encoder = {f"components.tagger.model.encoder.{key}": value for key, value in SMALL_ENCODER.items() if key != "@architectures"}
    overrides = {"paths.train": str(corpus), "paths.dev": str(corpus), **encoder}
    config = Config().from_str(text, overrides=overrides)
    assert config["pretraining"]["component"] == "tagger" and config["pretraining"]["layer"] == "tok2vec"
    # "pretrained" weights whose vocabulary is two words the corpus does not have
    source = init_nlp(config)
    (features,) = [n for n in source.get_pipe("tagger").model.walk() if n.name == "doc_features"]
    init_word_vocab(features, [Doc(source.vocab, words=["zebra", "quokka", "zebra", "quokka"])])
    weights = tmp_path / "tok2vec.bin"
    weights.write_bytes(source.get_pipe("tagger").model.get_ref("tok2vec").to_bytes())
    capsys.readouterr()
    nlp = init_nlp(Config().from_str(text, overrides={**overrides, "paths.init_tok2vec": str(weights)}))
    out = capsys.readouterr().out
    assert "[tagger] word vocabulary: from the pretrained weights ([initialize] init_tok2vec)" in out
    assert "words covering" not in out
    (features,) = [n for n in nlp.get_pipe("tagger").model.walk() if n.name == "doc_features"]
    rows = features.predict([Doc(nlp.vocab, words=["zebra", "quokka", "eggs"])]).word_ids.tolist()
    assert rows[0] > 0 and rows[1] > 0 and rows[2] == 0


def test_a_listener_without_a_width_takes_the_encoders(corpus, tmp_path):
    """spacy_rnn.Tok2VecListener.v1 with no width: spaCy's tagger and parser and rnn_tagger listen with the
    encoder's output width (2 x width, bidirectional), set at initialize; the width is saved with the pipeline."""
    text = pipeline_config().replace(
        f'@architectures = "spacy.Tok2VecListener.v1"\nwidth = {2 * ENCODER_WIDTH}\n',
        '@architectures = "spacy_rnn.Tok2VecListener.v1"\n',
    )
    assert "width = 32\nupstream" not in text and text.count("spacy_rnn.Tok2VecListener.v1") == 3
    nlp = init_nlp(make_config(corpus, text))
    for name in ("tagger", "parser", "rnn_tagger"):
        (listener,) = nlp.get_pipe("tok2vec").listener_map[name]
        assert listener.get_dim("nO") == 2 * ENCODER_WIDTH
    history = train_steps(nlp, corpus, 20)
    assert history[-1]["tagger"] < history[0]["tagger"]
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert annotations(list(loaded.pipe(TEXTS))) == annotations(list(nlp.pipe(TEXTS)))


def test_a_listener_without_a_width_or_the_callback_says_what_is_missing(corpus):
    """Without the callback nothing sets the width: initialize names the callback (it failed inside
    the first prediction with Thinc's "Cannot get dimension 'nO'")."""
    text = pipeline_config().replace(
        f'@architectures = "spacy.Tok2VecListener.v1"\nwidth = {2 * ENCODER_WIDTH}\n',
        '@architectures = "spacy_rnn.Tok2VecListener.v1"\n',
    ).replace('[initialize.before_init]\n@callbacks = "spacy_rnn.init_word_vocabularies.v1"\n', "")
    assert "init_word_vocabularies" not in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the vocabulary from the sample, warned about
        with pytest.raises(ValueError, match="has no width: add .*spacy_rnn.init_word_vocabularies.v1"):
            init_nlp(make_config(corpus, text))


def test_spacy_senter_and_ner_listen_to_the_encoder():
    """spaCy's senter and ner train through listeners of the recurrent tok2vec and predict valid annotations."""
    from spacy.training import Example
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, **{"@architectures": "spacy_rnn.RNNEncoder.v2", "bidirectional": True})
    nlp.add_pipe("tok2vec", config={"model": encoder})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 2 * ENCODER_WIDTH, "upstream": "tok2vec"}
    nlp.add_pipe("senter", config={"model": {"@architectures": "spacy.Tagger.v2", "nO": None, "tok2vec": listener}})
    ner_model = {"@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
                 "hidden_width": 16, "maxout_pieces": 2, "use_upper": True, "nO": None, "tok2vec": listener}
    nlp.add_pipe("ner", config={"model": ner_model})
    examples = []
    for first, second in [(0, 1), (1, 2), (2, 0)]:
        words = SENTS[first][0] + SENTS[second][0]
        tags = SENTS[first][1] + SENTS[second][1]
        starts = [1] + [0] * (len(SENTS[first][0]) - 1) + [1] + [0] * (len(SENTS[second][0]) - 1)
        ents = ["U-FOOD" if tag.startswith("NN") else "O" for tag in tags]
        examples.append(Example.from_dict(Doc(nlp.vocab, words=words), {"sent_starts": starts, "entities": ents}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the vocabulary comes from the initialization sample here
        optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    assert nlp.get_pipe("tok2vec").listening_components == ["senter", "ner"]
    history = []
    for _ in range(40):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
        history.append(losses)
    for name in ("senter", "ner"):
        assert history[-1][name] < 0.5 * history[0][name], (name, history[0][name], history[-1][name])
    scores = nlp.evaluate(examples)
    assert scores["sents_f"] == 1.0 and scores["ents_f"] > 0.9


def test_a_streamed_training_corpus_gives_the_vocabulary_its_first_docs(corpus, monkeypatch, capsys):
    """[training] max_epochs = -1 streams the corpus without end (spaCy initializes the components
    from its first 100 examples): the callback read it all into memory and never returned. It now
    counts the first STREAMED_DOCS docs, or max_docs, and says so."""
    from spacy.util import registry
    from spacy_rnn.pipeline import vocabulary

    @registry.readers("test_spacy_rnn.endless.v1")
    def endless(path: str):
        def read(nlp):
            while True:
                yield from Corpus(path, gold_preproc=True)(nlp)
        return read

    monkeypatch.setattr(vocabulary, "STREAMED_DOCS", 5)
    streamed = {"training.max_epochs": -1, "corpora.train": {"@readers": "test_spacy_rnn.endless.v1", "path": str(corpus)}}
    nlp = init_nlp(make_config(corpus, **streamed))
    out = capsys.readouterr().out
    assert "word vocabulary: from the first 5 docs of the streamed training corpus" in out
    assert has_word_vocab(nlp.get_pipe("tok2vec").model)
    init_nlp(make_config(corpus, **streamed, **{"initialize.before_init.max_docs": 2}))
    assert "from the first" not in capsys.readouterr().out


def test_from_python_choose_word_vocabularies_does_what_the_callback_does(corpus):
    """nlp.initialize from Python: the callback reads the config's corpus, whose path is null there
    (it failed with spaCy's E913); it now says to call spacy_rnn.choose_word_vocabularies, which
    sets the listener widths and chooses the vocabulary from the docs given, as the callback does
    from the corpus."""
    import spacy_rnn

    def blank_pipeline():
        nlp = spacy.blank("en")
        nlp.add_pipe("tok2vec", config={"model": {**SMALL_ENCODER, "@architectures": "spacy_rnn.RNNEncoder.v2"}})
        nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": {
            "@architectures": "spacy_rnn.Tok2VecListener.v1", "upstream": "tok2vec"}}})
        return nlp

    nlp = blank_pipeline()
    examples = list(Corpus(str(corpus))(nlp))
    nlp.config["initialize"]["before_init"] = {"@callbacks": "spacy_rnn.init_word_vocabularies.v1"}
    with pytest.raises(ValueError, match=r"reads the training corpus \[corpora.train\], whose path is null .* "
                                         r"spacy_rnn.choose_word_vocabularies\(nlp, docs\) before nlp.initialize"):
        nlp.initialize(lambda: examples)
    # following that advice with the callback still in the config: it leaves the vocabulary given alone
    spacy_rnn.choose_word_vocabularies(nlp, examples)  # Examples: their reference docs are counted
    nlp.initialize(lambda: examples)
    with pytest.raises(TypeError, match="counts the words of Docs or Examples, got a str"):
        spacy_rnn.choose_word_vocabularies(blank_pipeline(), ["I like eggs"])
    by_callback = init_nlp(make_config(corpus, text=pipeline_config()))
    nlp = blank_pipeline()
    spacy_rnn.choose_word_vocabularies(nlp, (eg.reference for eg in examples))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sample fallback
        nlp.initialize(lambda: examples)
    keys = [n.attrs["word_keys"].tolist() for p in (nlp, by_callback) for n in p.get_pipe("tok2vec").model.walk()
            if n.name == "doc_features"]
    assert keys[0] == keys[1] and len(keys[0]) > 0
    assert all(t.tag_ for t in nlp("I like green eggs ."))
