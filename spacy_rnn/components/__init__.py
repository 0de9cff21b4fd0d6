from .tagger import RNNTagger, make_rnn_tagger

__all__ = ["RNNTagger", "make_rnn_tagger"]
