import subprocess
import sys

import numpy
import pytest
from confection import ConfigValidationError
import spacy
from spacy.util import load_model_from_path
from spacy.tokens import Span
from spacy.training import Example
from thinc.api import fix_random_seed
import torch

from spacy_rnn.models.gradients import all_weights_finite, clip_global_grad_norm, global_grad_norm
from spacy_rnn.models.wrappers import SETTINGS_ATTR, torch_modules

from .conftest import SMALL_ENCODER, TRAIN_DATA, make_examples, spy_optimizer



def make_nlp(token_attr="tag", cell="lstm", seed=0):
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, cell=cell)
    nlp.add_pipe(
        "rnn_tagger",
        config={"token_attr": token_attr, "model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": encoder}},
    )
    return nlp


def train(nlp, n_iter=60):
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    losses = {}
    for _ in range(n_iter):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses["rnn_tagger"]


@pytest.fixture(scope="module")
def trained_nlp():
    nlp = make_nlp()
    train(nlp)
    return nlp


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "minlstm"])
def test_overfit_tags(cell):
    nlp = make_nlp(cell=cell)
    loss = train(nlp)
    assert loss < 0.05
    for words, tags, _ in TRAIN_DATA:
        doc = nlp(" ".join(words))
        assert [t.tag_ for t in doc] == tags
        assert all(t.pos_ == "" for t in doc)


def test_overfit_upos_into_pos():
    nlp = make_nlp(token_attr="pos")
    assert train(nlp) < 0.05
    for words, _, pos in TRAIN_DATA:
        doc = nlp(" ".join(words))
        assert [t.pos_ for t in doc] == pos
        assert all(t.tag_ == "" for t in doc)
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["pos_acc"] == 1.0


def test_evaluate_reports_tag_acc(trained_nlp):
    assert trained_nlp.evaluate(make_examples(trained_nlp))["tag_acc"] == 1.0


def test_to_disk_then_spacy_load_in_new_process(trained_nlp, tmp_path):
    trained_nlp.to_disk(tmp_path / "model")
    text = "I like blue ham today !"
    expected = [t.tag_ for t in trained_nlp(text)]
    reloaded = load_model_from_path(tmp_path / "model")
    assert [t.tag_ for t in reloaded(text)] == expected
    # A fresh interpreter that never imports spacy_rnn: the entry points must do it.
    code = (
        "import spacy, sys; nlp = spacy.load(sys.argv[1]); "
        "print(' '.join(t.tag_ for t in nlp(sys.argv[2])))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model"), text],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.split() == expected


def test_pipe_equals_calling_doc_by_doc(trained_nlp):
    texts = ["I like eggs .", "", "The ham runs fast today !", "Eat", "blue " * 30]
    one_by_one = [[t.tag_ for t in trained_nlp(text)] for text in texts]
    for batch_size in (1, 2, 10):
        piped = [[t.tag_ for t in doc] for doc in trained_nlp.pipe(texts, batch_size=batch_size)]
        assert piped == one_by_one


def test_batch_invariance_of_scores(trained_nlp):
    tagger = trained_nlp.get_pipe("rnn_tagger")
    docs = [trained_nlp.make_doc(t) for t in ["I like green eggs .", "Eat blue ham today and tomorrow !", "dog"]]
    in_batch = tagger.model.predict(docs)
    for doc, scores in zip(docs, in_batch):
        alone = tagger.model.predict([doc])[0]
        numpy.testing.assert_allclose(alone, scores, rtol=1e-5, atol=1e-6)


def test_empty_one_token_and_long_docs(trained_nlp):
    assert len(trained_nlp("")) == 0
    assert [t.tag_ for t in trained_nlp("eggs")] != [""]
    docs = list(trained_nlp.pipe(["", "", ""]))
    assert [len(d) for d in docs] == [0, 0, 0]
    long_text = " ".join(["I like green eggs ."] * 1000)
    doc = trained_nlp(long_text)
    assert len(doc) == 5000
    labels = set(trained_nlp.get_pipe("rnn_tagger").labels)
    assert all(t.tag_ in labels for t in doc)
    assert [t.text for t in doc[-5:]] == ["I", "like", "green", "eggs", "."]


def backpropped_tagger(scale: float = 1.0):
    """An initialized rnn_tagger holding the gradients of one batch (the loss's gradient times scale)."""
    nlp = make_nlp()
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    tagger = nlp.get_pipe("rnn_tagger")
    scores, backprop = tagger.model.begin_update([eg.predicted for eg in examples])
    _, d_scores = tagger.get_loss(examples, scores)
    backprop([d * scale for d in d_scores])
    return tagger


def test_global_norm_clipping_rescales_all_gradients_together():
    tagger = backpropped_tagger(scale=1000)
    before = global_grad_norm(tagger.model)
    assert before > 1.0
    clip_global_grad_norm(tagger.model, 1.0)
    assert global_grad_norm(tagger.model) == pytest.approx(1.0, rel=1e-3)


def test_global_norm_is_the_norm_of_all_gradients_joined():
    tagger = backpropped_tagger()
    grads = [node.get_grad(name) for node in tagger.model.walk() for name in node.param_names if node.has_grad(name)]
    grads += [p.grad.numpy() for m in torch_modules(tagger.model) for p in m.parameters() if p.grad is not None]
    assert len(grads) > 5
    expected = float(numpy.sqrt(sum(float((numpy.asarray(g, dtype="float64") ** 2).sum()) for g in grads)))
    assert global_grad_norm(tagger.model) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("value,finite", [(float("nan"), False), (float("inf"), False), (3e38, True)])
def test_all_weights_finite_checks_every_element(value, finite):
    """One bad element in a torch weight is found; finite weights whose sum
    overflows (3e38 twice) are still finite."""
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    model = nlp.get_pipe("rnn_tagger").model
    assert all_weights_finite(model)
    weight = next(p for m in torch_modules(model) for p in m.parameters() if p.dim() == 2)
    with torch.no_grad():
        weight[0, 0] = value
        weight[0, 1] = value
    assert all_weights_finite(model) is finite


def test_same_seed_same_weights():
    a, b, c = make_nlp(seed=7), make_nlp(seed=7), make_nlp(seed=8)
    for nlp in (a, b, c):
        train(nlp, n_iter=5)
    assert a.get_pipe("rnn_tagger").model.to_bytes() == b.get_pipe("rnn_tagger").model.to_bytes()
    assert a.get_pipe("rnn_tagger").model.to_bytes() != c.get_pipe("rnn_tagger").model.to_bytes()


def test_bad_settings_are_reported():
    nlp = spacy.blank("en")
    with pytest.raises(ConfigValidationError, match=r"rnn_tagger -> token_attr\s+at root: 'lemma' is not typing.Literal\['tag', 'pos'\]"):
        nlp.add_pipe("rnn_tagger", config={"token_attr": "lemma"})
    # Through a config, spaCy's validation names the section, the setting and the allowed values.
    with pytest.raises(ConfigValidationError, match=r"model\.encoder -> cell\s+at root: 'transformer' is not typing\.Literal\['rnn', 'lstm', 'gru', 'mingru', 'minlstm'\]"):
        nlp.add_pipe("rnn_tagger", name="t2", config={"model": {"encoder": {"cell": "transformer"}}})
    with pytest.raises(ConfigValidationError) as info:
        nlp.add_pipe("rnn_tagger", name="t3", config={"model": {"encoder": {"depth": 0, "dropout": 1.0, "rows": [0, 1, 2]}}})
    message = str(info.value)
    assert "-> depth\tat root: 0 is not an int from 1 to 4" in message, message
    assert "-> dropout\tat root: 1.0 is not a number >= 0.0 and < 1.0" in message, message
    assert "-> rows\tat 0: 0 is not an int >= 1" in message, message
    # Built directly, the torch module checks it.
    from spacy_rnn.models.architectures import build_rnn_encoder_v2

    with pytest.raises(ValueError, match="Unknown recurrent cell 'transformer'"):
        build_rnn_encoder_v2(cell="transformer")


def test_no_annotation_gives_clear_error():
    nlp = make_nlp()
    doc = nlp.make_doc("a b")
    examples = [Example(doc, doc.copy())]
    with pytest.raises(ValueError, match=r"\[rnn_tagger\] found no 'tag' annotation"):
        nlp.initialize(lambda: examples)


@pytest.mark.parametrize("factory,ref", [("rnn_tagger", "output_layer"), ("rnn_ner", "crf")])
def test_a_nan_in_a_thinc_gradient_is_discarded(factory, ref):
    """A NaN in a Thinc-side gradient (softmax layer, CRF transitions) stops the
    step, and is cleared: the next step is clean (NaN * 0 would stay NaN)."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"encoder": SMALL_ENCODER}})
    examples = make_examples(nlp)
    for eg, (_, tags, _) in zip(examples, TRAIN_DATA):  # nouns are FOOD entities, for rnn_ner
        eg.reference.ents = [Span(eg.reference, i, i + 1, "FOOD") for i, tag in enumerate(tags) if tag.startswith("NN")]
    optimizer = nlp.initialize(lambda: examples)
    pipe = nlp.get_pipe(factory)
    layer = pipe.model.get_ref(ref)
    name = layer.param_names[-1]
    before = pipe.to_bytes()
    pipe.update(examples, sgd=False)  # gradients, no step
    grad = layer.get_grad(name)
    grad[(0,) * grad.ndim] = float("nan")
    layer.set_grad(name, grad)
    with pytest.raises(ValueError, match=rf"\[{factory}\] the gradient norm is nan"):
        pipe.finish_update(optimizer)
    assert pipe.to_bytes() == before
    assert not numpy.isnan(layer.get_grad(name)).any()
    pipe.update(examples, sgd=optimizer)  # the next step is clean
    for node in pipe.model.walk():
        for param in node.param_names:
            if node.has_param(param):
                assert numpy.isfinite(node.get_param(param)).all()
    assert pipe.to_bytes() != before


def test_a_batch_may_mix_docs_of_several_vocabs(trained_nlp):
    """Each doc's strings are read from its own Vocab (a foreign doc used to raise E018)."""
    nlp = trained_nlp
    texts = ("Quuxly eats green eggs", "Zorblax sleeps fast .")  # each rare word only in its own Vocab
    own, foreign = nlp.make_doc(texts[0]), spacy.blank("en")(texts[1])
    assert "Zorblax" not in nlp.vocab.strings and "Quuxly" not in foreign.vocab.strings
    together = [[t.tag_ for t in doc] for doc in nlp.pipe([own, foreign])]
    alone = [[t.tag_ for t in nlp(doc)] for doc in (nlp.make_doc(texts[0]), spacy.blank("en")(texts[1]))]
    assert together == alone and all(tag for tags in together for tag in tags)


def test_edits_that_would_tag_wrongly_are_refused_at_load(trained_nlp, tmp_path):
    """Label order and feature layout are saved with the weights; a saved
    pipeline whose cfg or config.cfg disagrees does not load."""
    import srsly
    from thinc.api import Config

    trained_nlp.to_disk(tmp_path / "ok")
    assert spacy.load(tmp_path / "ok")("I like ham")[0].tag_
    cases = {
        "labels": lambda path: srsly.write_json(
            path / "rnn_tagger" / "cfg",
            {**srsly.read_json(path / "rnn_tagger" / "cfg"), "labels": sorted(trained_nlp.get_pipe("rnn_tagger").labels, reverse=True)},
        ),
        "attrs": lambda path: edit_encoder(path, attrs=["SUFFIX", "PREFIX", "SHAPE"]),
        "max_word_chars": lambda path: edit_encoder(path, max_word_chars=12),
        # a pipeline saved before the shape settings were (commit eaa025b): the feature layout check
        "attrs_unrecorded": lambda path: (edit_encoder(path, attrs=["SUFFIX", "PREFIX", "SHAPE"]), drop_settings(path)),
    }
    expected = {
        "labels": r"\[rnn_tagger\] the labels in .* are not those the weights were trained with \(label 0 is",
        "attrs": r"\[rnn_tagger\] the config's model settings .* trained with: attrs is \['SUFFIX', 'PREFIX', 'SHAPE'\], trained with \['PREFIX', 'SUFFIX', 'SHAPE'\]",
        "max_word_chars": r"max_word_chars is 12, trained with 20",
        "attrs_unrecorded": r"\[rnn_tagger\] the config's encoder settings .* trained with: word_attr \+ attrs are 'NORM' \+ \['SUFFIX', 'PREFIX', 'SHAPE'\], trained with 'NORM' \+ \['PREFIX', 'SUFFIX', 'SHAPE'\]",
    }

    def drop_settings(path):
        saved = srsly.msgpack_loads((path / "rnn_tagger" / "model").read_bytes())
        saved["attrs"] = [{k: v for k, v in attrs.items() if k != SETTINGS_ATTR} for attrs in saved["attrs"]]
        (path / "rnn_tagger" / "model").write_bytes(srsly.msgpack_dumps(saved))

    def edit_encoder(path, **settings):
        config = Config().from_disk(path / "config.cfg", interpolate=False)
        config["components"]["rnn_tagger"]["model"]["encoder"].update(settings)
        config.to_disk(path / "config.cfg")

    for case, edit in cases.items():
        path = tmp_path / case
        trained_nlp.to_disk(path)
        edit(path)
        with pytest.raises(ValueError, match=expected[case]):
            spacy.load(path)


def test_weights_that_overflow_in_an_update_are_reported():
    """Finite gradients with a huge learning rate overflow the weights: the
    update says so instead of claiming the last good weights are kept."""
    fix_random_seed(0)
    nlp = make_nlp()
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e38
    pipe = nlp.get_pipe("rnn_tagger")
    pipe.cfg["max_grad_norm"] = 0.0
    with pytest.raises(ValueError, match=r"\[rnn_tagger\] this update made weights NaN or infinite"):
        for _ in range(5):
            nlp.update(examples, sgd=optimizer)


@pytest.mark.parametrize("predicted_words", [
    ["I", "like", "green", "eggs", "."],  # same tokens: read straight from the reference
    ["I", "like", "green", "eggs."],      # other tokens: spaCy's alignment
    ["i", "like", "green", "eggs", "."],  # same count, one text differs (case)
])
def test_aligned_labels_equal_spacys_alignment(predicted_words):
    from spacy.tokens import Doc
    from spacy_rnn.pipeline.tagger import _aligned_labels

    nlp = spacy.blank("en")
    reference = Doc(nlp.vocab, words=["I", "like", "green", "eggs", "."], tags=["PRP", "VBP", "", "NNS", "."])
    example = Example(Doc(nlp.vocab, words=predicted_words), reference)
    expected = example.get_aligned("TAG", as_string=True)
    assert _aligned_labels(example, "TAG") == expected
    assert "" in expected  # a missing tag stays missing


def test_settings_given_at_load_are_used_or_refused(trained_nlp, tmp_path):
    """spaCy reads a component's saved cfg over the one its config built. A setting the weights were
    trained for (token_attr) given otherwise at load is refused: it was silently the saved one while
    the scorer, built from the config, scored the other attribute (pos_acc 0.0 for correct tags). A
    setting that only steers training (max_grad_norm) keeps its saved value, as in spaCy, but a
    warning now says the config's was not used."""
    import warnings

    path = tmp_path / "tagger"
    trained_nlp.to_disk(path)
    with pytest.raises(ValueError, match=r"\[rnn_tagger\] token_attr is 'pos' in the config, but the weights .* were trained with 'tag'"):
        spacy.load(path, config={"components": {"rnn_tagger": {"token_attr": "pos"}}})
    saved = trained_nlp.get_pipe("rnn_tagger").cfg["max_grad_norm"]
    with pytest.warns(UserWarning, match=rf"keeps its own settings, not the config's \(max_grad_norm is 1.0 in the config, {saved!r} saved\)"):
        loaded = spacy.load(path, config={"components": {"rnn_tagger": {"max_grad_norm": 1.0}}})
    assert loaded.get_pipe("rnn_tagger").cfg["max_grad_norm"] == saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say when they agree
        spacy.load(path)
        # said once per saved component and setting: spaCy's find-threshold loads a pipeline once per
        # threshold it tries, each given in the config (11 warnings by default)
        spacy.load(path, config={"components": {"rnn_tagger": {"max_grad_norm": 2.0}}})
    fresh = make_nlp(token_attr="pos")
    with pytest.raises(ValueError, match="token_attr is 'pos' in the config"):
        fresh.get_pipe("rnn_tagger").from_bytes(trained_nlp.get_pipe("rnn_tagger").to_bytes())


def test_a_cell_the_weights_were_not_trained_with_is_refused_at_load(tmp_path):
    """A minGRU with output gates has the weight shapes of a minLSTM without: a config that swaps one
    for the other loaded the weights and tagged wrongly. The stack's choices are saved with the weights."""
    encoder = dict(SMALL_ENCODER, cell="mingru", output_gate=True, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": encoder}})
    nlp.initialize(lambda: make_examples(nlp))
    nlp.to_disk(tmp_path / "tagger")
    swapped = {"components": {"rnn_tagger": {"model": {"encoder": {"cell": "minlstm", "output_gate": False}}}}}
    with pytest.raises(ValueError, match=r"\[rnn_tagger\] the config's model settings .* cell is 'minlstm', trained with "
                                         r"'mingru'; output_gate is False, trained with True"):
        spacy.load(tmp_path / "tagger", config=swapped)
    assert spacy.load(tmp_path / "tagger")("I like green eggs .")[0].tag_


@pytest.mark.parametrize("changed, expected", [
    ({"width": 8}, "width is 8, trained with 16"),
    ({"depth": 2}, "depth is 2, trained with 1"),
    ({"rows": [100, 200, 40]}, r"rows is \[100, 200, 40\], trained with \[100, 200, 50\]"),
    ({"char_filters": 4, "cell": "gru"}, r"cell is 'gru', trained with 'lstm'; char_filters is 4, trained with \d+"),
])
def test_settings_that_change_weight_shapes_are_named_at_load(trained_nlp, tmp_path, changed, expected):
    """A setting that changes the weights' shapes, given otherwise at load, was refused with Thinc's
    "Attempt to change dimension 'nO'" or torch's "size mismatch for features.tables.2.weight",
    naming neither the setting nor its values. The encoder's settings are saved with the weights."""
    trained_nlp.to_disk(tmp_path / "tagger")
    given = {"components": {"rnn_tagger": {"model": {"encoder": changed}}}}
    message = rf"\[rnn_tagger\] the config's model settings are not those the weights in .*model were trained with: {expected}; restore"
    with pytest.raises(ValueError, match=message):
        spacy.load(tmp_path / "tagger", config=given)
    rebuilt = spacy.blank("en")
    rebuilt.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1",
                                                     "encoder": dict(SMALL_ENCODER, **changed)}})
    with pytest.raises(ValueError, match=rf"the weights in the bytes given to from_bytes were trained with: {expected}"):
        rebuilt.get_pipe("rnn_tagger").from_bytes(trained_nlp.get_pipe("rnn_tagger").to_bytes())


def test_a_memory_zone_ends_with_the_encoder_forgetting_its_words(trained_nlp):
    """spaCy frees the strings a memory zone made; the encoder's cache of words (by string) went on
    growing from zone to zone (up to 200,000 words) and is emptied when a zone ends."""
    from spacy_rnn.models import featurize

    (node,) = [n for n in trained_nlp.get_pipe("rnn_tagger").model.walk() if n.name == "doc_features"]
    expected = [t.tag_ for t in trained_nlp("I like green zebras today")]
    with trained_nlp.memory_zone():
        tags = [[t.tag_ for t in doc] for doc in trained_nlp.pipe(["I like green zebras today", "Quokkas eat ham"])]
        assert len(featurize._FORWARDS[node.id].cache.entries) >= 8
    assert tags[0] == expected
    assert len(featurize._FORWARDS[node.id].cache.entries) == 0
    assert [t.tag_ for t in trained_nlp("I like green zebras today")] == expected


@pytest.mark.parametrize("factory, config", [
    ("rnn_tagger", {"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": SMALL_ENCODER}}),
    ("hmm_tagger", {}),
    ("most_frequent_tagger", {}),
])
def test_a_pos_tagger_warns_when_its_score_has_no_weight(factory, config):
    """A factory's default score weights are fixed (tag_acc 1.0, pos_acc null): a tagger built for
    POS from Python left spacy train choosing model-best by tag_acc, which nothing produced (0.0 at
    every evaluation). initialize now says so; with the weight given, or for tags, nothing is said."""
    import warnings

    def initialized(token_attr, weights=None):
        fix_random_seed(0)
        nlp = spacy.blank("en")
        nlp.add_pipe(factory, name="tagger", config={**config, "token_attr": token_attr})
        if weights:
            nlp.config = nlp.config.merge({"training": {"score_weights": weights}})
        nlp.initialize(lambda: make_examples(nlp))
        return nlp

    with pytest.warns(UserWarning, match=r"\[tagger\] is scored as pos_acc, which \[training.score_weights\] gives no weight"):
        initialized("pos")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*score_weights")
        initialized("tag")
        initialized("pos", {"pos_acc": 1.0, "tag_acc": None})


def test_nlp_rehearse_steps_the_torch_weights_with_their_gradients():
    """spaCy's Tagger.rehearse through nlp.rehearse: the gradients it collects were zeroed in place by
    Thinc's PyTorch shim before spaCy applied them, so the encoder was stepped with zeros."""
    nlp = make_nlp()
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    nlp.resume_training()
    for _ in range(3):
        nlp.update(examples[:2])
    spy = spy_optimizer()
    nlp.rehearse(examples, sgd=spy)
    torch_sums = [total for (_, name), total in spy.sums.items() if "." in name]  # torch parameter names
    assert torch_sums and sum(total > 0 for total in torch_sums) > len(torch_sums) // 2
