"""`python -m spacy_rnn train-lm | evaluate-lm | generate` (see spacy_rnn.cli.lm)."""
from .cli.lm import make_app

if __name__ == "__main__":
    make_app()()
