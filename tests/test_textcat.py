import numpy
import pytest
import spacy
import srsly
from numpy.testing import assert_allclose
from spacy.tokens import DocBin
from spacy.training import Corpus, Example
from thinc.api import fix_random_seed

from spacy_rnn import choose_word_vocabularies
from spacy_rnn.models.wrappers import SETTINGS_ATTR

from .conftest import SMALL_ENCODER

DATA = [
    ("what is the capital of france ?", "LOC"),
    ("where is the eiffel tower ?", "LOC"),
    ("who wrote hamlet ?", "HUM"),
    ("who painted the mona lisa ?", "HUM"),
    ("how many legs does a spider have ?", "NUM"),
    ("how many days are in a year ?", "NUM"),
]
LABELS = ["HUM", "LOC", "NUM"]
# Multi-label: independent tags.
ML_DATA = [
    ("great food and friendly staff", {"FOOD": 1.0, "SERVICE": 1.0}),
    ("the soup was cold", {"FOOD": 1.0, "SERVICE": 0.0}),
    ("rude waiter", {"FOOD": 0.0, "SERVICE": 1.0}),
    ("parking was easy", {"FOOD": 0.0, "SERVICE": 0.0}),
]


def make_nlp(pooling=("mean", "max"), cell="lstm", multilabel=False, seed=0):
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    model = {
        "@architectures": "spacy_rnn.RNNTextClassifier.v1",
        "exclusive_classes": not multilabel,
        "pooling": list(pooling),
        "encoder": dict(SMALL_ENCODER, cell=cell, bidirectional=True),
    }
    nlp.add_pipe("rnn_textcat_multilabel" if multilabel else "rnn_textcat", name="textcat", config={"model": model})
    return nlp


def examples(nlp, data=DATA):
    out = []
    for text, label in data:
        cats = label if isinstance(label, dict) else {name: float(name == label) for name in LABELS}
        out.append(Example.from_dict(nlp.make_doc(text), {"cats": cats}))
    return out


def train(nlp, data=DATA, n_iter=40):
    egs = examples(nlp, data)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.01
    for _ in range(n_iter):
        losses = nlp.update(egs, sgd=optimizer)
    return losses["textcat"]


@pytest.fixture(scope="module")
def trained():
    """Pooled as configs/textcat_trec.cfg pools (mean, max, conv): save/load, batch invariance and
    empty docs are checked on every kind of pooling layer that config has."""
    nlp = make_nlp(("mean", "max", "conv"))
    train(nlp)
    return nlp


@pytest.mark.parametrize(
    "pooling", [["mean"], ["max"], ["last"], ["attention"], ["conv"], ["mean", "max", "last", "attention", "conv"]])
def test_overfit_and_predict_each_pooling(pooling):
    nlp = make_nlp(pooling)
    assert train(nlp) < 0.01
    for text, label in DATA:
        cats = nlp(text).cats
        assert sorted(cats) == LABELS
        assert max(cats, key=cats.get) == label
        assert sum(cats.values()) == pytest.approx(1.0, abs=1e-5)
    scores = nlp.evaluate(examples(nlp))
    assert scores["cats_macro_f"] == 1.0 and scores["cats_macro_auc"] == 1.0
    assert set(scores["cats_f_per_type"]) == set(LABELS)


def test_gru_trains(trained):
    nlp = make_nlp(cell="gru")
    assert train(nlp) < 0.01


def test_save_load_gives_the_same_cats(trained, tmp_path):
    trained.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    texts = [text for text, _ in DATA] + ["an unseen question about zebras ?"]
    for a, b in zip(trained.pipe(texts), loaded.pipe(texts)):
        assert a.cats == b.cats
    assert loaded.get_pipe("textcat").labels == tuple(LABELS)


def test_batch_invariance(trained):
    """A text's cats do not depend on the other texts of its batch (lengths, padding, empty docs)."""
    texts = [text for text, _ in DATA]
    alone = [trained(text).cats for text in texts]
    mixed = list(trained.pipe(["", texts[0] + " " + texts[4] * 3] + texts + [""], batch_size=64))
    for a, doc in zip(alone, mixed[2:-1]):
        assert doc.cats == pytest.approx(a, abs=1e-6)


def test_empty_docs_have_a_defined_output(trained):
    alone = trained("").cats
    assert sorted(alone) == LABELS and sum(alone.values()) == pytest.approx(1.0, abs=1e-5)
    for doc in trained.pipe(["", "", "who wrote hamlet ?", ""]):
        if not len(doc):
            assert doc.cats == pytest.approx(alone, abs=1e-7)
    # training on a batch with empty docs, or only empty docs, is fine
    textcat = trained.get_pipe("textcat")
    egs = examples(trained, [("", "LOC"), ("who wrote hamlet ?", "HUM")])
    losses = textcat.update(egs, sgd=None)
    assert numpy.isfinite(losses["textcat"])
    assert textcat.update(examples(trained, [("", "LOC")]), sgd=None)["textcat"] == 0.0


def test_multilabel_independent_labels_and_threshold():
    nlp = make_nlp(multilabel=True)
    assert train(nlp, ML_DATA, n_iter=60) < 0.01
    for text, cats in ML_DATA:
        predicted = nlp(text).cats
        assert {label for label, p in predicted.items() if p >= 0.5} == {label for label, v in cats.items() if v}
    assert sum(nlp("great food and friendly staff").cats.values()) > 1.5  # not a softmax
    textcat = nlp.get_pipe("textcat")
    assert textcat.cfg["threshold"] == 0.5
    egs = examples(nlp, ML_DATA)
    assert nlp.evaluate(egs)["cats_micro_f"] == 1.0
    # a threshold above every probability predicts nothing, so recall drops to 0
    textcat.cfg["threshold"] = 0.999999
    assert nlp.evaluate(egs)["cats_micro_r"] < 1.0


def test_labels_come_from_the_data_and_positive_label_is_checked():
    nlp = make_nlp()
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    assert nlp.get_pipe("textcat").labels == tuple(LABELS)
    nlp = make_nlp()
    with pytest.raises(ValueError, match="E919|E920"):
        nlp.get_pipe("textcat").initialize(lambda: egs, nlp=nlp, positive_label="SPAM")
    nlp = make_nlp()
    one_label = [Example.from_dict(nlp.make_doc("x y"), {"cats": {"A": 1.0}})]
    with pytest.raises(ValueError, match=r"\[textcat\] needs at least 2 label"):
        nlp.initialize(lambda: one_label)


def test_listener_shares_a_tok2vec_encoder(tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, **{"@architectures": "spacy_rnn.RNNEncoder.v2", "bidirectional": True})
    nlp.add_pipe("tok2vec", config={"model": encoder})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 2 * SMALL_ENCODER["width"], "upstream": "*"}
    model = {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": True,
             "pooling": ["mean", "last"], "bidirectional": True, "encoder": listener}
    nlp.add_pipe("rnn_textcat", name="textcat", config={"model": model})
    egs = examples(nlp)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.01
    for _ in range(40):
        losses = nlp.update(egs, sgd=optimizer)
    assert losses["textcat"] < 0.01
    assert nlp.get_pipe("tok2vec").listening_components == ["textcat"]
    assert [max(d.cats, key=d.cats.get) for d in nlp.pipe(t for t, _ in DATA)] == [label for _, label in DATA]
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert [d.cats for d in loaded.pipe(t for t, _ in DATA)] == [d.cats for d in nlp.pipe(t for t, _ in DATA)]


def test_last_pooling_over_a_listener_needs_the_direction():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": dict(SMALL_ENCODER, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})})
    model = {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": True, "pooling": ["last"],
             "encoder": {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"}}
    with pytest.raises(ValueError, match='pooling "last" needs to know whether the encoder is bidirectional'):
        nlp.add_pipe("rnn_textcat", config={"model": model})


def test_a_bad_pooling_in_the_config_names_the_setting():
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match="pooling"):
        nlp.add_pipe("rnn_textcat", config={"model": {"pooling": ["sum"]}})


def test_default_model_is_the_shipped_encoder():
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("rnn_textcat")
    config = nlp.config["components"]["rnn_textcat"]["model"]
    assert config["pooling"] == ["mean", "max"] and config["exclusive_classes"] is True
    assert config["encoder"]["@architectures"] == "spacy_rnn.RNNEncoder.v2"
    assert textcat.cfg["max_grad_norm"] == 5.0
    multi = spacy.blank("en").add_pipe("rnn_textcat_multilabel")
    assert multi.model.attrs["multi_label"] is True


def test_textcat_scores_match_by_hand(trained):
    """cats_score is macro F over the labels, as spaCy's textcat scorer computes it."""
    egs = examples(trained) + examples(trained, [("where was hamlet written ?", "HUM")])
    scores = trained.evaluate(egs)
    predicted = [max(trained(eg.reference.text).cats.items(), key=lambda kv: kv[1])[0] for eg in egs]
    gold = [max(eg.reference.cats, key=eg.reference.cats.get) for eg in egs]
    f_scores = []
    for label in LABELS:
        tp = sum(p == g == label for p, g in zip(predicted, gold))
        fp = sum(p == label != g for p, g in zip(predicted, gold))
        fn = sum(g == label != p for p, g in zip(predicted, gold))
        f_scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    assert_allclose(scores["cats_macro_f"], numpy.mean(f_scores), rtol=1e-6)


@pytest.mark.parametrize("factory", ["rnn_textcat", "rnn_textcat_multilabel"])
def test_threshold_takes_every_probability_from_0_to_1(factory):
    """spacy find-threshold tries thresholds from 0 to 1, both included."""
    from thinc.api import ConfigValidationError

    model = {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "encoder": SMALL_ENCODER,
             "exclusive_classes": factory == "rnn_textcat"}
    for threshold in (0.0, 1.0):
        pipe = spacy.blank("en").add_pipe(factory, config={"threshold": threshold, "model": model})
        assert pipe.cfg["threshold"] == threshold
    with pytest.raises(ConfigValidationError, match="threshold"):
        spacy.blank("en").add_pipe(factory, config={"threshold": 1.5, "model": model})


@pytest.mark.parametrize("encoder_bidirectional", [True, False])
def test_a_direction_that_contradicts_the_encoder_is_refused(encoder_bidirectional):
    """"last" reads [forward; backward] halves by the setting; one that contradicts a spacy_rnn encoder's own
    direction pooled the wrong vectors without a word."""
    model = {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": True, "pooling": ["last"],
             "bidirectional": not encoder_bidirectional,
             "encoder": dict(SMALL_ENCODER, bidirectional=encoder_bidirectional)}
    with pytest.raises(ValueError, match="but the encoder is (not )?bidirectional"):
        spacy.blank("en").add_pipe("rnn_textcat", config={"model": model})
    model["bidirectional"] = encoder_bidirectional
    spacy.blank("en").add_pipe("rnn_textcat", config={"model": model})


def test_pooling_in_another_order_is_refused_at_load(tmp_path):
    """["max", "mean"] builds the layers of ["mean", "max"] in the other order, with the same shapes:
    Thinc read the saved weights into them crosswise, and the scores changed without a word."""
    nlp = make_nlp(pooling=("mean", "max"))
    nlp.initialize(lambda: examples(nlp))
    nlp.to_disk(tmp_path / "textcat")
    with pytest.raises(ValueError, match=r"\[textcat\] the config's model settings .* pooling is \['max', 'mean'\], trained "
                                         r"with \['mean', 'max'\]"):
        spacy.load(tmp_path / "textcat", config={"components": {"textcat": {"model": {"pooling": ["max", "mean"]}}}})
    # saved before the settings were (commit eaa025b): the layers built are compared with the saved ones
    model_file = tmp_path / "textcat" / "textcat" / "model"
    saved = srsly.msgpack_loads(model_file.read_bytes())
    saved["attrs"] = [{k: v for k, v in attrs.items() if k != SETTINGS_ATTR} for attrs in saved["attrs"]]
    model_file.write_bytes(srsly.msgpack_dumps(saved))
    with pytest.raises(ValueError, match=r"\[textcat\] the config builds the layer 'reduce_max' where the "
                                         r"weights .* have 'reduce_mean'"):
        spacy.load(tmp_path / "textcat", config={"components": {"textcat": {"model": {"pooling": ["max", "mean"]}}}})
    nlp.to_disk(tmp_path / "textcat")
    # fewer poolings: Thinc's "mismatched structure" named no setting
    with pytest.raises(ValueError, match=r"\[textcat\] the config's model settings .* pooling is \['mean'\], trained with "
                                         r"\['mean', 'max'\]"):
        spacy.load(tmp_path / "textcat", config={"components": {"textcat": {"model": {"pooling": ["mean"]}}}})
    text = "who wrote hamlet ?"
    assert spacy.load(tmp_path / "textcat")(text).cats == nlp(text).cats


@pytest.mark.parametrize("multilabel", [False, True])
def test_a_config_nO_other_than_the_label_count_is_refused_at_initialize(multilabel):
    """nO = 3 with two labels initialized (doc.cats 0.333 each: two labels summing to 0.67), then
    the first update failed with numpy's "operands could not be broadcast", naming nothing."""
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": not multilabel,
             "pooling": ["mean"], "encoder": SMALL_ENCODER, "nO": len(LABELS) + 1}
    nlp.add_pipe("rnn_textcat_multilabel" if multilabel else "rnn_textcat", name="textcat", config={"model": model})
    with pytest.raises(ValueError, match=rf"\[textcat\] the model's nO is {len(LABELS) + 1}, but the component has "
                                         rf"{len(LABELS)} outputs .* leave nO = null"):
        nlp.initialize(lambda: examples(nlp))


def test_a_listener_without_a_width_feeds_the_weightless_poolings(tmp_path):
    """spacy_rnn.Tok2VecListener.v1 may leave its width out (init_word_vocabularies sets it at
    initialize): RNNTextClassifier refused it at build time for every pooling; mean and max need no
    width, the output layer's input is inferred, and a pooling with weights says what it needs."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": dict(SMALL_ENCODER, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})})
    listener = {"@architectures": "spacy_rnn.Tok2VecListener.v1", "upstream": "tok2vec"}
    model = {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": True,
             "pooling": ["mean", "max"], "encoder": listener}
    nlp.add_pipe("rnn_textcat", name="textcat", config={"model": model})
    egs = examples(nlp)
    choose_word_vocabularies(nlp, egs)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.01
    for _ in range(40):
        losses = nlp.update(egs, sgd=optimizer)
    assert losses["textcat"] < 0.05
    texts = [text for text, _ in DATA]
    assert [max(d.cats, key=d.cats.get) for d in nlp.pipe(texts)] == [label for _, label in DATA]
    assert nlp("").cats == nlp.get_pipe("textcat")(nlp.make_doc("")).cats  # an empty doc pools to zeros
    nlp.to_disk(tmp_path / "p")
    assert [d.cats for d in spacy.load(tmp_path / "p").pipe(texts)] == [d.cats for d in nlp.pipe(texts)]
    with pytest.raises(ValueError, match=r"pooling 'attention' needs the encoder's output width .* give a listener its width"):
        spacy.blank("en").add_pipe("rnn_textcat", config={"model": dict(model, pooling=["mean", "attention"])})


def test_no_labels_from_a_gold_preproc_corpus_of_sentenced_docs_says_why(tmp_path):
    """spaCy's gold_preproc splits docs with sentence boundaries into sentences without doc.cats
    (the shipped textcat configs read corpora so): the error now says so."""
    nlp = spacy.blank("en")
    db = DocBin()
    for text, label in DATA:
        doc = nlp.make_doc(text + " Then more .")
        doc[0].is_sent_start = True
        doc[len(nlp.make_doc(text))].is_sent_start = True
        doc.cats = {name: float(name == label) for name in LABELS}
        db.add(doc)
    db.to_disk(tmp_path / "train.spacy")
    nlp = make_nlp()
    for gold_preproc, expected in ((True, "read it with gold_preproc = false"), (False, None)):
        egs = list(Corpus(str(tmp_path / "train.spacy"), gold_preproc=gold_preproc)(nlp))
        if expected:
            with pytest.raises(ValueError, match=rf"found \[\]; .*{expected}"):
                nlp.initialize(lambda: egs)
        else:
            nlp.initialize(lambda: egs)
            assert set(nlp.get_pipe("textcat").labels) == set(LABELS)
