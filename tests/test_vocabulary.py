"""The encoder chooses its word vocabulary from the whole training corpus,
whichever component owns it (spacy_rnn.RNNEncoder.v2)."""
import warnings

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training.initialize import init_nlp
from thinc.api import Config

from .conftest import SMALL_ENCODER

# Twelve docs: spaCy's tok2vec initializes its model on the first ten only.
# "zebra" occurs only in the last two, "unicorn" never in training.
WORDS = [["the", "cat", "sat", "."]] * 10 + [["the", "zebra", "ran", "."]] * 2
TAGS = {"the": "DT", "cat": "NN", "zebra": "NN", "sat": "VBD", "ran": "VBD", ".": "."}

ENCODER = "\n".join(
    f"{key} = {value!r}".replace("'", '"').replace("False", "false").replace("True", "true")
    for key, value in {**SMALL_ENCODER, "@architectures": "spacy_rnn.RNNEncoder.v2", "bidirectional": True}.items()
)

TOK2VEC_CONFIG = f"""
[paths]
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["tok2vec", "tagger"]

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
@architectures = "spacy.Tok2VecListener.v1"
width = {2 * SMALL_ENCODER["width"]}
upstream = "tok2vec"

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${{paths.train}}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${{paths.dev}}

[training]
seed = 0
gpu_allocator = null

[initialize]

[initialize.before_init]
@callbacks = "spacy_rnn.init_word_vocabularies.v1"
"""


@pytest.fixture
def corpus(tmp_path):
    nlp = spacy.blank("en")
    db = DocBin()
    for words in WORDS:
        db.add(Doc(nlp.vocab, words=words, tags=[TAGS[w] for w in words]))
    path = tmp_path / "train.spacy"
    db.to_disk(path)
    return path


def word_rows(nlp, component, words):
    """The word-table row each word gets in the component's encoder (0 = unknown)."""
    (features,) = [node for node in nlp.get_pipe(component).model.walk() if node.name == "doc_features"]
    batch = features.predict([Doc(nlp.vocab, words=words)])
    return dict(zip(words, batch.word_ids.tolist()))


def test_tok2vec_encoder_vocabulary_comes_from_the_whole_corpus(corpus, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the callback chose the vocabulary: no sample fallback
        nlp = init_nlp(
            Config().from_str(TOK2VEC_CONFIG, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)})
        )
    rows = word_rows(nlp, "tok2vec", ["the", "zebra", "unicorn"])
    # min_word_freq 1: "zebra" (docs 11 and 12 only) has its own row, like "the".
    assert rows["the"] > 0 and rows["zebra"] > 0 and rows["the"] != rows["zebra"]
    assert rows["unicorn"] == 0
    # 6 words: the, cat, sat, ., zebra, ran; all 48 training tokens covered.
    assert "[tok2vec] word vocabulary: 6 words covering 100.0% of training tokens" in capsys.readouterr().out
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert word_rows(loaded, "tok2vec", ["the", "zebra", "unicorn"]) == rows
    # The listener pipeline predicts the same after the round trip.
    texts = ["the zebra sat .", "the unicorn ran ."]
    assert [[t.tag_ for t in d] for d in loaded.pipe(texts)] == [[t.tag_ for t in d] for d in nlp.pipe(texts)]


def test_without_the_callback_the_sample_is_used_with_a_warning(corpus):
    config = Config().from_str(TOK2VEC_CONFIG, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)})
    config["initialize"]["before_init"] = None
    with pytest.warns(UserWarning, match=r"chosen from the 10 docs of the initialization sample only"):
        nlp = init_nlp(config)
    rows = word_rows(nlp, "tok2vec", ["the", "zebra"])
    assert rows["the"] > 0 and rows["zebra"] == 0


def test_rnn_tagger_chooses_its_own_vocabulary_and_says_so(corpus, capsys):
    from spacy.training import Corpus

    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger", config={"model": {"encoder": {**SMALL_ENCODER, "@architectures": "spacy_rnn.RNNEncoder.v2"}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sample fallback for our own pipes
        nlp.initialize(lambda: Corpus(corpus)(nlp))
    assert word_rows(nlp, "rnn_tagger", ["zebra"])["zebra"] > 0
    assert "[rnn_tagger] word vocabulary: 6 words covering 100.0% of training tokens" in capsys.readouterr().out


def test_the_frequency_cut_shows_in_the_report(corpus, capsys):
    from spacy.training import Corpus

    nlp = spacy.blank("en")
    encoder = {**SMALL_ENCODER, "@architectures": "spacy_rnn.RNNEncoder.v2", "min_word_freq": 3}
    nlp.add_pipe("rnn_tagger", config={"model": {"encoder": encoder}})
    nlp.initialize(lambda: Corpus(corpus)(nlp))
    rows = word_rows(nlp, "rnn_tagger", ["the", "zebra"])
    assert rows["the"] > 0 and rows["zebra"] == 0  # zebra and ran are seen twice only
    # 4 words kept; 44 of the 48 tokens covered.
    assert f"4 words covering {100 * 44 / 48:.1f}% of training tokens" in capsys.readouterr().out


def word_table(nlp, component):
    from spacy_rnn.models.pytorch import TokenEncoder
    from spacy_rnn.models.wrappers import torch_modules

    (encoder,) = [m for m in torch_modules(nlp.get_pipe(component).model) if isinstance(m, TokenEncoder)]
    return encoder.words.weight


@pytest.mark.parametrize("owner", ["rnn_tagger", "tok2vec"])
def test_the_word_table_is_sized_to_the_vocabulary(corpus, tmp_path, owner):
    """One row per word and the unknown word's, not vocab_size + 1, whichever component
    owns the encoder; the size is saved and loaded; a pipeline saved with the full table
    (before tables were fitted) loads fitted and predicts the same."""
    from spacy.training import Corpus

    if owner == "tok2vec":
        nlp = init_nlp(Config().from_str(TOK2VEC_CONFIG, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)}))
    else:
        nlp = spacy.blank("en")
        nlp.add_pipe("rnn_tagger", config={"model": {"encoder": {**SMALL_ENCODER, "@architectures": "spacy_rnn.RNNEncoder.v2"}}})
        nlp.initialize(lambda: Corpus(corpus)(nlp))
    assert SMALL_ENCODER["vocab_size"] + 1 > 7
    assert word_table(nlp, owner).shape[0] == 7  # 6 words and the unknown word
    nlp.to_disk(tmp_path / "fitted")
    assert word_table(spacy.load(tmp_path / "fitted"), owner).shape[0] == 7
    texts = ["the zebra sat .", "the unicorn ran ."]
    expected = [[t.tag_ for t in doc] for doc in nlp.pipe(texts)]
    # As saved before: the full table, its rows past the vocabulary never read.
    from spacy_rnn.models.pytorch import TokenEncoder
    from spacy_rnn.models.wrappers import torch_modules

    (encoder,) = [m for m in torch_modules(nlp.get_pipe(owner).model) if isinstance(m, TokenEncoder)]
    encoder.fit_word_rows(SMALL_ENCODER["vocab_size"] + 1)
    nlp.to_disk(tmp_path / "full")
    loaded = spacy.load(tmp_path / "full")
    assert [[t.tag_ for t in doc] for doc in loaded.pipe(texts)] == expected
    if owner == "rnn_tagger":  # spacy_rnn's components fit the table they load
        assert word_table(loaded, owner).shape[0] == 7


def test_the_vocabulary_is_counted_in_one_pass_in_bounded_chunks(monkeypatch):
    """init_word_vocab reads its docs once and keeps counts, not docs (a streamed corpus may have no
    end): counted in chunks of 3 values, merged, it chooses what counting all at once does, the
    most frequent words first (ties by key), each seen min_word_freq times."""
    from collections import Counter

    from spacy_rnn.models import featurize
    from spacy_rnn.models.architectures import build_rnn_encoder_v2

    nlp = spacy.blank("en")
    texts = ["the cat sat on the mat", "the dog sat", "a cat ran", "the end", "dog dog cat"]
    docs = [nlp.make_doc(text) for text in texts]
    counts = Counter(t.norm for doc in docs for t in doc)

    def chosen(chunk):
        monkeypatch.setattr(featurize._WordCounts, "CHUNK", chunk)
        model = build_rnn_encoder_v2(**{k: v for k, v in SMALL_ENCODER.items() if k != "@architectures"})
        (node,) = [n for n in model.walk() if n.name == "doc_features"]
        node.attrs["vocab_size"], node.attrs["min_word_freq"] = 3, 2
        (stats,) = featurize.init_word_vocab(model, iter(docs))
        return node.attrs["word_keys"].tolist(), stats

    keys, stats = chosen(3)
    expected = sorted(sorted((key for key, n in counts.items() if n >= 2), key=lambda key: (-counts[key], key))[:3])
    assert keys == expected and chosen(1_000_000)[0] == expected
    assert stats.n_words == 3 and stats.n_tokens == sum(counts.values())
    assert stats.coverage == sum(counts[key] for key in expected) / sum(counts.values())
