"""Plain PyTorch modules. Nothing here knows about spaCy or Thinc."""
from .embeddings import CharCNN, HashEmbedding
from .encoder import TokenEncoder
from .linear_recurrence import LinearCellOptions
from .lm import LMState, RNNLanguageModel, SequenceLogProbs, detach_state, sample_words
from .recurrent import CELL_TYPES, RecurrentEncoder, packing_order, stacked_rnn

__all__ = [
    "CELL_TYPES", "CharCNN", "HashEmbedding", "LMState", "LinearCellOptions", "RNNLanguageModel", "RecurrentEncoder",
    "SequenceLogProbs", "TokenEncoder", "detach_state", "packing_order", "sample_words", "stacked_rnn",
]
