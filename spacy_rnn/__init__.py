"""spacy-rnn: recurrent sequence models as spaCy pipeline components."""
from .about import __version__
from .architectures import build_rnn_encoder_v1, build_rnn_tagger_v1
from .components import RNNTagger, make_rnn_tagger

__all__ = [
    "__version__",
    "build_rnn_encoder_v1",
    "build_rnn_tagger_v1",
    "RNNTagger",
    "make_rnn_tagger",
]
