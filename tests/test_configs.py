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


def test_spacy_train_names_component_and_file_of_a_bad_setting(tiny_corpus, tmp_path):
    from spacy.cli.train import train

    train_path, dev_path = tiny_corpus
    text = (Path(__file__).parent.parent / "configs" / "tagger.cfg").read_text()
    assert 'cell = "lstm"' in text
    config_path = tmp_path / "typo.cfg"
    config_path.write_text(text.replace('cell = "lstm"', 'cell = "lsmt"'))
    with pytest.raises(ValueError) as info:
        train(config_path, overrides={"paths.train": str(train_path), "paths.dev": str(dev_path)})
    message = str(info.value)
    assert "component 'tagger'" in message, message
    assert str(config_path) in message, message
    assert "unknown cell 'lsmt'" in message, message
