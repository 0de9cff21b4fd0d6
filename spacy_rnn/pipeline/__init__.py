"""spaCy pipeline components: what every neural pipe shares (base.py), then one file per component."""
from .lm import RNNLM, generate, make_rnn_lm
from .ner import RNNEntityRecognizer, make_rnn_ner
from .tagger import RNNTagger, make_rnn_tagger
from .textcat import RNNMultiLabelTextCategorizer, RNNTextCategorizer, make_rnn_textcat, make_rnn_textcat_multilabel

__all__ = [
    "RNNEntityRecognizer", "RNNLM", "RNNMultiLabelTextCategorizer", "RNNTagger", "RNNTextCategorizer", "generate",
    "make_rnn_lm", "make_rnn_ner", "make_rnn_tagger", "make_rnn_textcat", "make_rnn_textcat_multilabel",
]
