"""The encoder blocks of the components' default model configs.

DEFAULT_ENCODER_SETTINGS are spacy_rnn.RNNEncoder.v2's own defaults (read from its signature),
which are those of configs/tagger.cfg (the LSTM): the default encoder of rnn_ner and
rnn_textcat. rnn_tagger's default model is configs/tagger_mingru.cfg's, chosen on EWT dev."""
import inspect
import json

from ..models.architectures import build_rnn_encoder_v2

DEFAULT_ENCODER_SETTINGS = {name: p.default for name, p in inspect.signature(build_rnn_encoder_v2).parameters.items()}


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
