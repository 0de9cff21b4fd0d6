"""Convert an IOB2 NER corpus to a .spacy file (a DocBin) and print counts.

    python scripts/convert_ner.py ../shared/data/conll2003/train.txt corpus/conll2003 --format conll2003 --on-invalid repair
    python scripts/convert_ner.py ../shared/data/uner_english_ewt/en_ewt-ud-dev.iob2 corpus/uner --format uner --on-invalid reject

Writes OUTPUT_DIR/<input stem>.spacy. A malformed line, or with --on-invalid
reject an `I-X` that does not continue an `X` entity, stops the conversion
with exit status 1 and a one-line `error: file:line: ...` message; nothing is
written then. With --on-invalid repair such tags become `B-X` and each repair
is listed with its location. The input is read as UTF-8 (a leading byte-order
mark is removed); see spacy_rnn.data for what counts as a blank line. The
.spacy file is written beside its destination and renamed into place, so an
interrupted run leaves the previous output as it was.
"""
import sys
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.tokens import DocBin

from spacy_rnn.data import CorpusFormatError, read_conll2003, read_uner, repair_sentences, sentences_to_docs
from spacy_rnn.files import atomic_output

MAX_SHOWN = 20


class Format(str, Enum):
    conll2003 = "conll2003"
    uner = "uner"


class OnInvalid(str, Enum):
    repair = "repair"
    reject = "reject"


READERS = {Format.conll2003: read_conll2003, Format.uner: read_uner}


def main(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Corpus file to convert"),
    output_dir: Path = typer.Argument(..., help="Directory for <input stem>.spacy"),
    format: Format = typer.Option(..., "--format", help="Input format"),
    on_invalid: OnInvalid = typer.Option(..., "--on-invalid", help="What to do with an I-X that does not continue an X entity"),
    n_sents: int = typer.Option(10, "--n-sents", min=1, help="Sentences per Doc (Docs never cross a document boundary)"),
):
    nlp = spacy.blank("en")
    n_documents = 0

    def count_documents(sentences):
        nonlocal n_documents
        for sentence in sentences:
            n_documents += sentence.doc_start
            yield sentence

    sentences = count_documents(READERS[format](input_path))
    repaired: List[str] = []
    n_sentences = n_tokens = 0
    labels: Counter = Counter()
    db = DocBin(store_user_data=True)
    try:
        for doc in sentences_to_docs(nlp.vocab, repair_sentences(sentences, on_invalid == OnInvalid.repair, repaired), n_sents):
            db.add(doc)
            n_sentences += sum(1 for _ in doc.sents)
            n_tokens += len(doc)
            labels.update(ent.label_ for ent in doc.ents)
    except CorpusFormatError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
    output_dir.mkdir(parents=True, exist_ok=True)
    output_path = output_dir / f"{input_path.stem}.spacy"
    with atomic_output(output_path) as tmp_path:
        db.to_disk(tmp_path)
    typer.echo(f"{input_path} -> {output_path}")
    typer.echo(f"documents: {n_documents}  Docs written: {len(db)}  sentences: {n_sentences}  tokens: {n_tokens}  entities: {sum(labels.values())}")
    for label, count in sorted(labels.items()):
        typer.echo(f"  {label}: {count}")
    typer.echo(f"repaired I-X sequences: {len(repaired)}")
    for message in repaired[:MAX_SHOWN]:
        typer.echo(f"  {message}")
    if len(repaired) > MAX_SHOWN:
        typer.echo(f"  ... and {len(repaired) - MAX_SHOWN} more")


if __name__ == "__main__":
    typer.run(main)
