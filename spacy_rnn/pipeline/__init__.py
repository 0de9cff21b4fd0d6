"""spaCy pipeline components: what every neural pipe shares (base.py), then one file per component."""
from .lm import RNNLM, generate, make_rnn_lm
from .ner import RNNEntityRecognizer, make_rnn_ner
from .tagger import RNNTagger, make_rnn_tagger

__all__ = ["RNNEntityRecognizer", "RNNLM", "RNNTagger", "generate", "make_rnn_lm", "make_rnn_ner", "make_rnn_tagger"]
