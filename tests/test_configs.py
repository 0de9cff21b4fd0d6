import json
from pathlib import Path

import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from .conftest import TRAIN_DATA
from .test_readme import render_readme

CONFIG_DIR = Path(__file__).parent.parent / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.cfg"))


def shipped_config(name: str):
    """configs/NAME, uninterpolated."""
    return load_config(CONFIG_DIR / name, interpolate=False)


def test_configs_exist():
    assert any(path.name == "tagger.cfg" for path in CONFIGS)


def corpus_labels(attr: str) -> set:
    """The tags ("tag_") or UPOS tags ("pos_") of the tiny corpus (conftest.tiny_corpus)."""
    column = 2 if attr == "pos_" else 1
    return {label for example in TRAIN_DATA for label in example[column]}


def check_annotated(nlp, doc) -> None:
    """Each pipe set what it assigns on every token of the doc."""
    for name, pipe in nlp.pipeline:
        assigns = nlp.get_pipe_meta(name).assigns
        labels = set(getattr(pipe, "labels", ()))
        if "token.morph" in assigns:
            upos = {dict(f.split("=", 1) for f in label.split("|")).get("POS") for label in labels}
            assert upos == corpus_labels("pos_"), (name, labels)
            assert all(t.pos_ in upos for t in doc), (name, [(t.text, t.pos_) for t in doc])
        elif "token.dep" in assigns:
            assert all(t.dep_ in labels and t.head.i in range(len(doc)) for t in doc), (name, [(t.text, t.dep_) for t in doc])
        elif "token.tag" in assigns or "token.pos" in assigns:
            # spaCy's tagger writes tag; ours write their token_attr (tag or pos).
            attr = getattr(pipe, "token_attr", "tag") + "_"
            assert labels == corpus_labels(attr), (name, labels)
            assert all(getattr(t, attr) in labels for t in doc), (name, [(t.text, getattr(t, attr)) for t in doc])
        elif "token.ent_iob" in assigns:
            assert labels == {"FOOD"}, (name, labels)  # the corpus's only entity type
            assert all(t.ent_iob_ in ("B", "I", "O") for t in doc), (name, [(t.text, t.ent_iob_) for t in doc])
            assert all(t.ent_type_ in labels for t in doc if t.ent_iob_ != "O")
        elif assigns == ["doc.cats"]:
            assert set(labels) == {"EXCLAIM", "OTHER"}, (name, labels)  # the corpus's categories
            assert set(doc.cats) == set(labels) and abs(sum(doc.cats.values()) - 1.0) < 1e-5, (name, doc.cats)
        elif assigns == ["doc.tensor"]:
            assert doc.tensor.shape[0] == len(doc) and doc.tensor.shape[1] > 0, (name, doc.tensor.shape)
        else:
            raise AssertionError(f"{name} assigns {assigns}: add a check of them here")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_and_predicts(path, tiny_corpus):
    train, dev = tiny_corpus
    config = load_config(path, overrides={"paths.train": str(train), "paths.dev": str(dev)}, interpolate=False)
    nlp = init_nlp(config)
    # Initialized (not trained) on the tiny corpus: every pipe found its labels
    # there and annotates every token.
    check_annotated(nlp, nlp("I like green eggs ."))
    check_annotated(nlp, nlp("Unseen words : zebras quarrel"))


def test_spacy_train_names_the_setting_and_its_choices(tiny_corpus, tmp_path, capsys):
    from spacy.cli.train import train

    train_path, dev_path = tiny_corpus
    text = (CONFIG_DIR / "tagger.cfg").read_text()
    assert 'cell = "lstm"' in text and "depth = 2" in text
    config_path = tmp_path / "typo.cfg"
    config_path.write_text(text.replace('cell = "lstm"', 'cell = "lsmt"').replace("depth = 2", "depth = 7"))
    # spacy train prints spaCy's config validation error and exits 1.
    with pytest.raises(SystemExit):
        train(config_path, overrides={"paths.train": str(train_path), "paths.dev": str(dev_path)})
    message = capsys.readouterr().out
    assert "model.encoder -> cell" in message and "'lsmt'" in message and "'lstm'" in message, message
    assert "model.encoder -> depth" in message and "7 is not an int from 1 to 4" in message, message


def test_encoder_defaults_are_the_shipped_lstm_tagger_settings():
    """RNNEncoder.v2's defaults, the default encoder of rnn_ner and rnn_textcat (before rnn_ner's
    dropouts) and configs/tagger.cfg's encoder agree."""
    from spacy_rnn.pipeline.defaults import DEFAULT_ENCODER_CONFIG, DEFAULT_ENCODER_SETTINGS as defaults
    from spacy_rnn.pipeline.textcat import DEFAULT_MODEL as TEXTCAT_MODEL
    from thinc.api import Config

    shipped = shipped_config("tagger.cfg")
    for config in (shipped["components"]["tagger"]["model"]["encoder"], Config().from_str("[model]\n" + DEFAULT_ENCODER_CONFIG)["model"]["encoder"],
                   Config(TEXTCAT_MODEL)["encoder"]):
        config = dict(config)
        assert config.pop("@architectures") == "spacy_rnn.RNNEncoder.v2"
        assert config == defaults


def test_rnn_tagger_default_model_is_the_shipped_mingru_config():
    """nlp.add_pipe("rnn_tagger") builds configs/tagger_mingru.cfg's model (the default tagger)."""
    from spacy_rnn.pipeline.tagger import DEFAULT_MODEL
    from thinc.api import Config

    shipped = shipped_config("tagger_mingru.cfg")
    assert Config(DEFAULT_MODEL) == shipped["components"]["tagger"]["model"]
    assert DEFAULT_MODEL["encoder"]["cell"] == "mingru"
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger")
    assert nlp.config["components"]["rnn_tagger"]["model"]["encoder"]["short_conv"] is True


def test_upos_config_is_the_default_tagger_on_pos():
    """configs/tagger_upos.cfg is configs/tagger_mingru.cfg (rnn_tagger's default model) trained
    into Token.pos_ and chosen on pos_acc, nothing else changed; configs/tagger.cfg with the same
    changes is the LSTM the tagger benchmark trains beside it (rnn_lstm_upos)."""
    upos = shipped_config("tagger_upos.cfg")
    xpos = shipped_config("tagger_mingru.cfg")
    assert upos["components"]["tagger"]["token_attr"] == "pos"
    assert upos["training"]["score_weights"] == {"tag_acc": None, "pos_acc": 1.0}
    xpos["components"]["tagger"]["token_attr"] = "pos"
    xpos["training"]["score_weights"] = {"tag_acc": None, "pos_acc": 1.0}
    assert upos == xpos


def test_fast_config_is_the_default_tagger_with_the_lstms_character_filters():
    """configs/tagger_mingru_fast.cfg is configs/tagger_mingru.cfg with configs/tagger.cfg's
    (the LSTM's) number of character filters, nothing else changed: the tagger benchmark's speed
    comparison of the two cells (rnn_mingru_conv against rnn_lstm) differs in the cell alone
    there, and the README's figures for it come from that file."""
    fast, default, lstm = (shipped_config(name) for name in ("tagger_mingru_fast.cfg", "tagger_mingru.cfg", "tagger.cfg"))
    chars = fast["components"]["tagger"]["model"]["encoder"]["char_filters"]
    assert chars == lstm["components"]["tagger"]["model"]["encoder"]["char_filters"] == 64
    assert default["components"]["tagger"]["model"]["encoder"]["char_filters"] == 128
    default["components"]["tagger"]["model"]["encoder"]["char_filters"] = chars
    assert fast == default


def test_encoder_config_names_an_unknown_setting():
    from spacy_rnn.pipeline.defaults import encoder_config

    with pytest.raises(ValueError, match="celll"):
        encoder_config(celll="gru")


def _override_value(text: str):
    """A command-line override's value as `spacy train` reads it: JSON, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def test_shipped_trec_config_is_the_lstm_recipe_with_the_chosen_candidates_overrides():
    """configs/textcat_trec.cfg is the benchmark row it was chosen by: its base config plus its overrides."""
    benchmark = render_readme.load_script("benchmark_textcat")
    chosen = next(s for s in benchmark.SYSTEMS if s.name == "trec/rnn_mingru_meanmaxconv_nofeatures_lr1")
    repo = Path(__file__).parent.parent
    overrides = {key: _override_value(value) for key, value in chosen.overrides.items()}
    built = load_config(repo / chosen.config, overrides=overrides, interpolate=False)
    shipped = load_config(repo / "configs" / "textcat_trec.cfg", interpolate=False)
    assert chosen.config == "configs/textcat_trec_lstm.cfg"
    assert built.to_str() == shipped.to_str()
