from .ner import RNNEntityRecognizer, make_rnn_ner
from .tagger import RNNTagger, make_rnn_tagger

__all__ = ["RNNEntityRecognizer", "RNNTagger", "make_rnn_ner", "make_rnn_tagger"]
