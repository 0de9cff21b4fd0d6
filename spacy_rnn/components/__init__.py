from .baselines import HMMTagger, MostFrequentTagger, make_hmm_tagger, make_most_frequent_tagger
from .lm import RNNLM, generate, make_rnn_lm
from .ner import RNNEntityRecognizer, make_rnn_ner
from .tagger import RNNTagger, make_rnn_tagger

__all__ = [
    "HMMTagger",
    "MostFrequentTagger",
    "RNNEntityRecognizer",
    "RNNLM",
    "RNNTagger",
    "make_hmm_tagger",
    "make_most_frequent_tagger",
    "generate",
    "make_rnn_lm",
    "make_rnn_ner",
    "make_rnn_tagger",
]
