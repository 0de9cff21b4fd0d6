from .baselines import HMMTagger, MostFrequentTagger, make_hmm_tagger, make_most_frequent_tagger
from .ner import RNNEntityRecognizer, make_rnn_ner
from .tagger import RNNTagger, make_rnn_tagger

__all__ = [
    "HMMTagger",
    "MostFrequentTagger",
    "RNNEntityRecognizer",
    "RNNTagger",
    "make_hmm_tagger",
    "make_most_frequent_tagger",
    "make_rnn_ner",
    "make_rnn_tagger",
]
