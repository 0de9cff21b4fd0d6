from importlib.metadata import entry_points

import pytest
from spacy.language import Language
from spacy.util import registry

ARCHITECTURES = sorted(ep.name for ep in entry_points(group="spacy_architectures") if ep.value.startswith("spacy_rnn"))
FACTORIES = sorted(ep.name for ep in entry_points(group="spacy_factories") if ep.value.startswith("spacy_rnn"))


def test_entry_points_are_installed():
    assert "spacy_rnn.RNNTagger.v1" in ARCHITECTURES
    assert "rnn_tagger" in FACTORIES


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_resolves(name):
    assert callable(registry.architectures.get(name))


@pytest.mark.parametrize("name", FACTORIES)
def test_factory_resolves(name):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe(name)
    assert Language.has_factory(name)


def test_spacy_package_lists_spacy_rnn_as_requirement():
    import spacy
    from spacy.cli.package import get_third_party_dependencies

    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger")
    assert any(req.startswith("spacy-rnn") for req in get_third_party_dependencies(nlp.config))
