"""`python -m spacy_rnn train-lm | evaluate-lm | generate | annotate` (see spacy_rnn.cli)."""
from .cli import make_app

if __name__ == "__main__":
    make_app()()
