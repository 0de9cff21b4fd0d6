"""Batch annotation of large inputs with any spaCy pipeline: `spacy_rnn annotate`."""
from .run import annotate

__all__ = ["annotate"]
