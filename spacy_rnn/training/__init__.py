"""Training loops over a corpus outside `spacy train`: the language model
with truncated BPTT (lm) and its runs that save spaCy pipelines (lm_pipeline)."""
