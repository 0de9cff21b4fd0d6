"""Models: plain torch modules (pytorch/), Docs -> integer batches (featurize.py),
the Thinc glue (wrappers.py) and the registered architectures (architectures.py)."""
