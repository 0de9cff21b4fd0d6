"""Count-based baselines (most-frequent tag, HMM) and their pipes: numpy only, no torch."""
from .pipes import HMMTagger, MostFrequentTagger, make_hmm_tagger, make_most_frequent_tagger

__all__ = ["HMMTagger", "MostFrequentTagger", "make_hmm_tagger", "make_most_frequent_tagger"]
