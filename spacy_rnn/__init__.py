"""spacy-rnn: recurrent sequence models as spaCy pipeline components."""
from .about import __version__
from .architectures import build_rnn_encoder_v1, build_rnn_tagger_v1
from .components import RNNTagger, make_rnn_tagger
from .components.lm import RNNLM, generate, make_rnn_lm

__all__ = [
    "__version__",
    "build_rnn_encoder_v1",
    "build_rnn_tagger_v1",
    "RNNTagger",
    "make_rnn_tagger",
    "RNNLM",
    "generate",
    "make_rnn_lm",
]
