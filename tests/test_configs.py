from pathlib import Path

import pytest
from spacy.training.initialize import init_nlp
from spacy.util import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").rglob("*.cfg"))


def test_configs_exist():
    assert any(path.name == "tagger.cfg" for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_and_predicts(path, tiny_corpus):
    train, dev = tiny_corpus
    config = load_config(path, overrides={"paths.train": str(train), "paths.dev": str(dev)}, interpolate=False)
    nlp = init_nlp(config)
    doc = nlp("I like green eggs .")
    assert len(doc) == 5
