"""The encoder blocks of the components' default model configs.

DEFAULT_ENCODER_SETTINGS are spacy_rnn.RNNEncoder.v2's own defaults, which are those of
configs/tagger.cfg (the LSTM): the default encoder of rnn_ner and rnn_textcat. rnn_tagger's
default model is configs/tagger_mingru.cfg's (TAGGER_ENCODER_CONFIG), chosen on EWT dev."""
import json

DEFAULT_ENCODER_SETTINGS = {
    "cell": "lstm",
    "width": 128,
    "depth": 2,
    "bidirectional": True,
    "dropout": 0.33,
    "word_attr": "NORM",
    "word_width": 96,
    "vocab_size": 30000,
    "min_word_freq": 2,
    "word_dropout": 0.1,
    "attrs": ["PREFIX", "SUFFIX", "SHAPE"],
    "rows": [2000, 10000, 1000],
    "embed_widths": [16, 48, 16],
    "char_width": 32,
    "char_filters": 64,
    "max_word_chars": 20,
    "n_chars": 1024,
    "feed_forward": False,
    "output_gate": False,
    "short_conv": False,
}


def encoder_config(**settings) -> str:
    """A [model.encoder] block of spacy_rnn.RNNEncoder.v2 with its defaults, changed by `settings`
    (names of DEFAULT_ENCODER_SETTINGS; values as in Python: JSON is the config's value syntax)."""
    unknown = sorted(set(settings) - set(DEFAULT_ENCODER_SETTINGS))
    if unknown:
        raise ValueError(f"not a setting of spacy_rnn.RNNEncoder.v2: {', '.join(unknown)}")
    values = {**DEFAULT_ENCODER_SETTINGS, **settings}
    lines = ["[model.encoder]", '@architectures = "spacy_rnn.RNNEncoder.v2"']
    lines += [f"{name} = {json.dumps(value)}" for name, value in values.items()]
    return "\n" + "\n".join(lines) + "\n"


DEFAULT_ENCODER_CONFIG = encoder_config()
