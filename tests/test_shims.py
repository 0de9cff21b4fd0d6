"""Parameter averaging (`use_averages = true`) reaches the torch weights."""
import numpy
import spacy
import torch
from spacy.tokens import Doc
from thinc.api import Adam

from spacy_rnn.models.wrappers import AveragingPyTorchShim

from .conftest import SMALL_ENCODER, TRAIN_DATA, make_examples


def torch_parameters(model):
    return {
        (shim.id, name): param.detach().clone()
        for node in model.walk()
        for shim in node.shims
        for name, param in shim._model.named_parameters()
    }


def test_use_params_swaps_in_the_averages_and_back():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("rnn_tagger", config={"model": {"encoder": SMALL_ENCODER}})
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01, use_averages=True)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    assert all(isinstance(shim, AveragingPyTorchShim) for node in tagger.model.walk() for shim in node.shims)
    trained = torch_parameters(tagger.model)
    assert trained and set(trained) <= set(optimizer.averages)
    with nlp.use_params(optimizer.averages):
        averaged = torch_parameters(tagger.model)
        doc = nlp(Doc(nlp.vocab, words=TRAIN_DATA[0][0]))
    for key, value in averaged.items():
        numpy.testing.assert_allclose(value.numpy(), optimizer.averages[key], rtol=1e-6)
    assert any(not torch.equal(trained[key], averaged[key]) for key in trained)
    after = torch_parameters(tagger.model)
    assert all(torch.equal(trained[key], after[key]) for key in trained)
    assert [t.tag_ for t in doc] and all(t.tag_ for t in doc)
