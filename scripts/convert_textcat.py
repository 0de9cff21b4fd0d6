"""Convert TREC or SST-2 to .spacy files (DocBins with doc.cats) and print counts.

    python scripts/convert_textcat.py trec ../shared/data/trec/train_5500.label corpus/trec
    python scripts/convert_textcat.py sst2 ../shared/data/sst2/stsa.binary.train ../shared/data/sst2/stsa.binary.dev corpus/sst2
    python scripts/convert_textcat.py sst2 ... corpus/sst2_phrases --phrases ../shared/data/sst2/train_phrases_glue.tsv

Writes OUTPUT_DIR/train.spacy and OUTPUT_DIR/dev.spacy. The labels are those
found in the data (TREC: the 6 coarse classes; SST-2: NEGATIVE, POSITIVE),
one-hot in doc.cats. TREC has no dev set: a fixed 10% of train (seed 0,
stratified by label, repeated questions kept on one side; see
spacy_rnn.textcat_data.split_dev) becomes dev. With --phrases, SST-2's
training set is the phrase file (GLUE SST-2 train: every labelled phrase of
the training trees, sentences included) instead of the training sentences.

A malformed line stops the conversion with exit status 1 and a one-line
`error: file:line: ...` message; nothing is written then. Files are written
beside their destination and renamed into place.
"""
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.tokens import DocBin

from spacy_rnn.data import CorpusFormatError
from spacy_rnn.files import atomic_output
from spacy_rnn.textcat_data import (
    LabelledText,
    read_sst2,
    read_sst2_phrases,
    read_trec,
    records_to_docs,
    split_dev,
)

app = typer.Typer(add_completion=False, help=__doc__.split("\n")[0])


def write(output_dir: Path, splits: Dict[str, List[LabelledText]]) -> None:
    nlp = spacy.blank("en")
    labels = sorted({record.label for records in splits.values() for record in records})
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        db = DocBin(store_user_data=True)
        n_tokens = 0
        for doc in records_to_docs(nlp.vocab, records, labels):
            db.add(doc)
            n_tokens += len(doc)
        path = output_dir / f"{name}.spacy"
        with atomic_output(path) as tmp:
            db.to_disk(tmp)
        counts = Counter(record.label for record in records)
        typer.echo(f"{path}: {len(db)} texts, {n_tokens} tokens; " + ", ".join(f"{label} {counts[label]}" for label in labels))


def read_all(reader, path: Path) -> List[LabelledText]:
    try:
        return list(reader(path))
    except CorpusFormatError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)


@app.command()
def trec(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="train_5500.label"),
    output_dir: Path = typer.Argument(..., help="Directory for train.spacy and dev.spacy"),
    dev_fraction: float = typer.Option(0.1, help="Share of each label's distinct questions held out as dev"),
    seed: int = typer.Option(0, help="Seed of the dev split"),
):
    """TREC question classification, coarse labels, with a fixed dev split of train."""
    train, dev = split_dev(read_all(read_trec, input_path), dev_fraction, seed)
    write(output_dir, {"train": train, "dev": dev})


@app.command()
def sst2(
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="stsa.binary.train"),
    dev_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="stsa.binary.dev"),
    output_dir: Path = typer.Argument(..., help="Directory for train.spacy and dev.spacy"),
    phrases: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="train_phrases_glue.tsv: train on phrases instead"),
):
    """SST-2 binary sentiment: train and dev as given (or phrase-level train)."""
    train = read_all(read_sst2_phrases, phrases) if phrases else read_all(read_sst2, train_path)
    dev = read_all(read_sst2, dev_path)
    if phrases:
        dev_texts = {record.text for record in dev}
        overlap = sum(record.text in dev_texts for record in train)
        typer.echo(f"phrases that are also dev sentences: {overlap}")
    write(output_dir, {"train": train, "dev": dev})


if __name__ == "__main__":
    app()
