import numpy
import pytest
import spacy
from spacy import displacy
from spacy.tokens import Span
from spacy.training import Example
from thinc.api import fix_random_seed

from .conftest import SMALL_ENCODER, spy_optimizer

NER_DATA = [
    ("Peter Blackburn visited New York City today .", [(0, 15, "PER"), (24, 37, "LOC")]),
    ("The EU rejects German calls .", [(4, 6, "ORG"), (15, 21, "MISC")]),
    ("Nothing happened here .", []),
]



def make_nlp(decoder="crf", scheme="BIO", cell="lstm", seed=0):
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy_rnn.RNNEntityRecognizer.v1", "encoder": dict(SMALL_ENCODER, cell=cell)}
    nlp.add_pipe("rnn_ner", config={"decoder": decoder, "scheme": scheme, "model": model})
    return nlp


def examples(nlp, data=NER_DATA):
    return [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in data]


def train(nlp, n_iter=60, data=NER_DATA):
    egs = examples(nlp, data)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.01
    for _ in range(n_iter):
        losses = {}
        nlp.update(egs, sgd=optimizer, losses=losses)
    return losses["rnn_ner"]


@pytest.fixture(scope="module")
def trained_nlp():
    nlp = make_nlp()
    train(nlp)
    return nlp


@pytest.mark.parametrize(
    "decoder,scheme,cell",
    [("crf", "BIO", "lstm"), ("softmax", "BIO", "lstm"), ("crf", "BILUO", "gru"), ("crf", "BIO", "rnn")],
)
def test_overfit_and_predict(decoder, scheme, cell):
    nlp = make_nlp(decoder, scheme, cell)
    assert train(nlp) < 0.05
    for text, ents in NER_DATA:
        doc = nlp(text)
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == ents
        assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)
    scores = nlp.evaluate(examples(nlp))
    assert scores["ents_f"] == 1.0 and scores["ents_p"] == 1.0 and scores["ents_r"] == 1.0
    assert set(scores["ents_per_type"]) == {"PER", "LOC", "ORG", "MISC"}


def test_labels_and_tags(trained_nlp):
    ner = trained_nlp.get_pipe("rnn_ner")
    assert ner.labels == ("LOC", "MISC", "ORG", "PER")
    assert ner.tag_names[:3] == ["O", "B-LOC", "I-LOC"]


def test_training_updates_transitions_and_emissions():
    nlp = make_nlp()
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    ner = nlp.get_pipe("rnn_ner")
    emissions, backprop = ner.model.begin_update([eg.predicted for eg in egs])
    loss, d_emissions = ner.get_loss(egs, emissions)
    assert loss > 0
    assert all(numpy.abs(d).sum() > 0 for d in d_emissions)
    crf = ner.model.get_ref("crf")
    for name in ("transitions", "start", "end"):
        assert numpy.abs(crf.get_grad(name)).sum() > 0


def test_round_trip(trained_nlp, tmp_path):
    trained_nlp.to_disk(tmp_path / "ner")
    reloaded = spacy.load(tmp_path / "ner")
    for text, _ in NER_DATA + [("Peter visited the EU in New York .", None)]:
        a = [(e.start, e.end, e.label_) for e in trained_nlp(text).ents]
        b = [(e.start, e.end, e.label_) for e in reloaded(text).ents]
        assert a == b


def test_pipe_and_batch_invariance(trained_nlp):
    texts = [t for t, _ in NER_DATA] + ["", "Peter", "New York " * 50]
    one_by_one = [[(e.start, e.end, e.label_) for e in trained_nlp(t).ents] for t in texts]
    for batch_size in (1, 3, 100):
        piped = [[(e.start, e.end, e.label_) for e in d.ents] for d in trained_nlp.pipe(texts, batch_size=batch_size)]
        assert piped == one_by_one


def test_empty_docs(trained_nlp):
    docs = list(trained_nlp.pipe(["", "", ""]))
    assert [len(d.ents) for d in docs] == [0, 0, 0]
    egs = examples(trained_nlp, [("", [])])
    assert trained_nlp.get_pipe("rnn_ner").update(egs) == {"rnn_ner": 0.0}


def test_preset_entities_are_kept(trained_nlp):
    doc = trained_nlp.make_doc("Peter Blackburn visited New York City today .")
    doc.ents = [Span(doc, 4, 5, label="ORG")]  # "York"
    doc = trained_nlp.get_pipe("rnn_ner")(doc)
    ents = [(e.text, e.label_) for e in doc.ents]
    assert ("York", "ORG") in ents
    assert ("Peter Blackburn", "PER") in ents
    assert not any(label == "LOC" and "York" in text and text != "York" for text, label in ents)


@pytest.mark.parametrize("decoder", ["crf", "softmax"])
def test_entities_are_predicted_around_preset_ones(decoder):
    """A predicted span overlapping a preset entity (an entity_ruler's) was dropped whole, so the
    tokens beside the preset entity lost theirs; now the preset tokens are decoded as O and the rest
    of the sentence is predicted around them, as spaCy's ner does."""
    nlp = make_nlp(decoder)
    train(nlp)
    doc = nlp.make_doc("Peter Blackburn visited New York City today .")
    doc.ents = [Span(doc, 1, 3, label="ORG")]  # "Blackburn visited"
    ents = [(e.text, e.label_) for e in nlp.get_pipe("rnn_ner")(doc).ents]
    assert ents == [("Peter", "PER"), ("Blackburn visited", "ORG"), ("New York City", "LOC")]


def test_a_label_added_after_training_is_not_predicted_before_an_update_sees_it():
    """The new tags' scores start at 0: after 20 updates the CRF's learned scores made 'City' NEW."""
    nlp = make_nlp("crf")
    train(nlp, n_iter=20)
    texts = [text for text, _ in NER_DATA] + ["German EU City visited Peter .", "Blackburn rejects New calls today ."]
    before = [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    nlp.get_pipe("rnn_ner").add_label("NEW")
    assert [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)] == before


def test_blocked_tokens_may_still_get_an_entity(trained_nlp):
    """doc.set_ents(blocked=...) marks tokens B without a type; they are not preset entities (the
    preset-entity constraint decoded them as O, which the README says rnn_ner does not do)."""
    doc = trained_nlp.make_doc("Peter Blackburn visited New York City today .")
    doc.set_ents([], blocked=[Span(doc, 3, 6)])
    ents = [(e.text, e.label_) for e in trained_nlp.get_pipe("rnn_ner")(doc).ents]
    assert ents == [("Peter Blackburn", "PER"), ("New York City", "LOC")]


def test_an_nO_in_the_config_initializes_when_right_and_is_named_when_wrong():
    """A config nO made add_label take the pipe for trained and grow an unallocated CRF (KeyError)."""
    for n_tags, error in ((9, None), (12, r"\[rnn_ner\] the model's nO is 12, but the component has 9 outputs")):
        nlp = spacy.blank("en")
        model = {"@architectures": "spacy_rnn.RNNEntityRecognizer.v1", "encoder": SMALL_ENCODER, "nO": n_tags}
        nlp.add_pipe("rnn_ner", config={"model": model})
        if error:
            with pytest.raises(ValueError, match=error):
                nlp.initialize(lambda: examples(nlp))
        else:
            nlp.initialize(lambda: examples(nlp))
            assert nlp.get_pipe("rnn_ner").labels == ("LOC", "MISC", "ORG", "PER")


def test_rehearse_pulls_the_emissions_back_to_those_of_the_resumed_model():
    """nlp.rehearse did nothing for rnn_ner (TrainablePipe's rehearse: no loss, no step)."""
    nlp = make_nlp()
    train(nlp, n_iter=20)
    optimizer = nlp.resume_training()
    egs = examples(nlp)
    assert nlp.rehearse(egs, sgd=optimizer)["rnn_ner"] == pytest.approx(0.0, abs=1e-12)  # nothing changed yet
    forget = examples(nlp, [(text, []) for text, _ in NER_DATA])
    for _ in range(5):
        nlp.update(forget, sgd=optimizer)
    optimizer = nlp.create_optimizer()  # no momentum from the updates above
    history = [nlp.rehearse(egs, sgd=optimizer)["rnn_ner"] for _ in range(20)]
    assert history[0] > 0 and history[-1] < 0.75 * history[0], history


def test_nlp_rehearse_steps_the_torch_weights_with_their_gradients():
    """spaCy's nlp.rehearse collects the gradients through the optimizer call and applies them after
    the component's finish_update, which had zeroed the torch ones in place: the encoder was
    stepped with zeros."""
    nlp = make_nlp()
    train(nlp, n_iter=20)
    nlp.resume_training()
    for _ in range(3):
        nlp.update(examples(nlp, [(text, []) for text, _ in NER_DATA]))
    spy = spy_optimizer()
    nlp.rehearse(examples(nlp), sgd=spy)
    torch_sums = [total for (_, name), total in spy.sums.items() if "." in name]  # torch parameter names
    assert torch_sums and sum(total > 0 for total in torch_sums) > len(torch_sums) // 2
    # nothing left behind: the next update's gradients are its own
    for node in nlp.get_pipe("rnn_ner").model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                assert not node.get_grad(name).any(), (node.name, name)


def test_rehearse_of_a_listener_is_refused_naming_the_component():
    """spaCy's tok2vec has no rehearse: the listener failed with torch's "backward through the graph a
    second time", E953 or E203, naming nothing."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": dict(SMALL_ENCODER, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": SMALL_ENCODER["width"] * 2, "upstream": "*"}
    nlp.add_pipe("rnn_ner", config={"model": {"@architectures": "spacy_rnn.RNNEntityRecognizer.v1", "encoder": listener}})
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    nlp.update(egs)
    optimizer = nlp.resume_training()
    with pytest.raises(ValueError, match=r"\[rnn_ner\] listens to a shared encoder, which spaCy does not rehearse"):
        nlp.rehearse(egs, sgd=optimizer)


def test_missing_annotation_is_not_outside():
    """Tokens with unknown annotation contribute no loss; tokens known to be O do."""
    nlp = make_nlp()
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    ner = nlp.get_pipe("rnn_ner")
    doc = nlp.make_doc("Peter Blackburn visited here")
    missing = Example(doc, nlp.make_doc("Peter Blackburn visited here"))  # no NER annotation at all
    assert missing.get_aligned_ner() == [None] * 4
    emissions = ner.model.predict([doc])
    loss, d_emissions = ner.get_loss([missing], emissions)
    assert loss == pytest.approx(0.0, abs=1e-6)
    assert numpy.abs(d_emissions[0]).max() < 1e-6
    outside = Example.from_dict(nlp.make_doc("Peter Blackburn visited here"), {"entities": []})
    assert ner.get_loss([outside], emissions)[0] > 0.01


def test_displacy_renders(trained_nlp):
    html = displacy.render(trained_nlp(NER_DATA[0][0]), style="ent")
    assert "Peter Blackburn" in html and "PER" in html


def test_bad_settings():
    # spaCy's config validation names the setting and the choices.
    with pytest.raises(ValueError, match=r"rnn_ner -> decoder\s+at root: 'beam' is not typing.Literal\['crf', 'softmax'\]"):
        spacy.blank("en").add_pipe("rnn_ner", config={"decoder": "beam"})
    with pytest.raises(ValueError, match=r"rnn_ner -> scheme\s+at root: 'IOB1' is not typing.Literal\['BIO', 'BILUO'\]"):
        spacy.blank("en").add_pipe("rnn_ner", config={"scheme": "IOB1"})


ANIMAL_DATA = NER_DATA + [("The dog Rex chased Peter Blackburn .", [(8, 11, "ANIMAL"), (19, 34, "PER")])]


@pytest.mark.parametrize("decoder,scheme", [("crf", "BIO"), ("crf", "BILUO"), ("softmax", "BIO")])
def test_a_label_added_after_training_is_learned_and_saved(decoder, scheme, tmp_path):
    """Adding an entity type to a trained rnn_ner (spaCy's ner workflow: add_label, then
    resume_training) was refused (E922): the output layer and the CRF now grow by the new tags."""
    nlp = make_nlp(decoder, scheme)
    train(nlp)
    ner = nlp.get_pipe("rnn_ner")
    assert ner.add_label("EVENT") == 1 and ner.add_label("PER") == 0  # a known label is not new
    assert ner.labels == ("LOC", "MISC", "ORG", "PER", "EVENT")
    assert ner.model.get_dim("nO") == len(ner.tag_names) == 1 + 5 * (len(scheme) - 1)
    assert [(e.text, e.label_) for e in nlp("Peter Blackburn visited New York City today .").ents] == [
        ("Peter Blackburn", "PER"), ("New York City", "LOC")]
    # the new tags' scores start at 0, above negative learned ones: not predicted until trained
    assert ner.cfg["untrained_labels"] == ["EVENT"]
    assert all(e.label_ != "EVENT" for text in ("German EU City visited Peter .", "x y z") for e in nlp(text).ents)
    assert ner.add_label("ANIMAL") == 1
    optimizer = nlp.resume_training()
    egs = examples(nlp, ANIMAL_DATA)
    for _ in range(60):
        nlp.update(egs, sgd=optimizer)
    assert nlp.evaluate(egs)["ents_per_type"]["ANIMAL"]["f"] == 1.0
    assert ner.cfg["untrained_labels"] == ["EVENT"]  # ANIMAL was seen in an update
    nlp.to_disk(tmp_path / "ner")
    loaded = spacy.load(tmp_path / "ner")
    assert loaded.get_pipe("rnn_ner").labels == ner.labels
    assert loaded.get_pipe("rnn_ner").cfg["untrained_labels"] == ["EVENT"]
    texts = [text for text, _ in ANIMAL_DATA]
    assert [[(e.text, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)] == [
        [(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


@pytest.mark.parametrize("scheme", ["BIO", "BILUO"])
def test_labels_with_hyphens_train_and_decode(scheme):
    """WNUT-style labels (geo-loc, sports-team): a tag splits at its first "-", as in spaCy's iob_utils."""
    data = [("Peter Blackburn visited New York City today .", [(0, 15, "person-name"), (24, 37, "geo-loc")]),
            ("The Lakers beat Boston .", [(4, 10, "sports-team"), (16, 22, "geo-loc")])]
    nlp = make_nlp(scheme=scheme)
    train(nlp, n_iter=80, data=data)
    assert nlp.get_pipe("rnn_ner").labels == ("geo-loc", "person-name", "sports-team")
    for text, ents in data:
        assert [(e.start_char, e.end_char, e.label_) for e in nlp(text).ents] == ents


@spacy.registry.architectures("test_ner.plain_emissions.v1")
def plain_emissions(encoder):
    """An rnn_ner model of one's own, without the refs spacy_rnn.RNNEntityRecognizer.v1 sets."""
    from thinc.api import Linear, chain, with_array

    return chain(encoder, with_array(Linear()))


def test_an_architecture_without_an_output_layer_ref_initializes_and_trains():
    """add_label looked up the "output_layer" ref unconditionally (KeyError at initialize)."""
    nlp = spacy.blank("en")
    model = {"@architectures": "test_ner.plain_emissions.v1", "encoder": SMALL_ENCODER}
    nlp.add_pipe("rnn_ner", config={"decoder": "softmax", "model": model})
    assert train(nlp, n_iter=30) < 1.0
    with pytest.raises(ValueError, match="E922"):  # no resize_output: a new label is refused once trained
        nlp.get_pipe("rnn_ner").add_label("EVENT")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy on the overflowing weights
def test_a_refused_update_leaves_an_added_label_untrained():
    """An update refused for a diverged loss ("This update was not applied") still marked the label
    it saw as trained, so it was predicted from its untrained scores."""
    nlp = make_nlp()
    train(nlp, n_iter=5)
    ner = nlp.get_pipe("rnn_ner")
    ner.add_label("ANIMAL")
    egs = examples(nlp, ANIMAL_DATA)
    optimizer = nlp.resume_training()
    optimizer.learn_rate = 1e30  # the weights overflow: refused
    ner.cfg["max_grad_norm"] = 0.0
    with pytest.raises(ValueError):
        for _ in range(3):
            nlp.update(egs, sgd=optimizer)
    assert ner.cfg["untrained_labels"] == ["ANIMAL"]
