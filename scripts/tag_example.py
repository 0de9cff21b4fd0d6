"""Tag a sentence with a trained pipeline and print one token per line.

    python scripts/tag_example.py training/tagger/model-best "The quick brown fox jumps over the lazy dog."
"""
from pathlib import Path

import spacy
import typer


def main(model: Path, text: str):
    nlp = spacy.load(model)
    doc = nlp(text)
    for token in doc:
        print(f"{token.text}\t{token.tag_}\t{token.pos_}")


if __name__ == "__main__":
    typer.run(main)
