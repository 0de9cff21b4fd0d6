"""spacy-rnn: recurrent sequence models as spaCy pipeline components."""
from .about import __version__
from .models.architectures import build_rnn_encoder_v1, build_rnn_encoder_v2, build_rnn_tagger_v1
from .pipeline import (
    RNNLM,
    RNNEntityRecognizer,
    RNNMultiLabelTextCategorizer,
    RNNTagger,
    RNNTextCategorizer,
    generate,
    make_rnn_lm,
    make_rnn_ner,
    make_rnn_tagger,
)
from .pipeline.quantize import load_int8, quantize_pipeline
from .pipeline.vocabulary import choose_word_vocabularies
from .runtime import keep_freed_memory

__all__ = [
    "__version__",
    "build_rnn_encoder_v1",
    "build_rnn_encoder_v2",
    "build_rnn_tagger_v1",
    "RNNEntityRecognizer",
    "RNNTagger",
    "make_rnn_ner",
    "make_rnn_tagger",
    "RNNLM",
    "generate",
    "make_rnn_lm",
    "RNNTextCategorizer",
    "RNNMultiLabelTextCategorizer",
    "load_int8",
    "quantize_pipeline",
    "keep_freed_memory",
    "choose_word_vocabularies",
]
