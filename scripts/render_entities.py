"""Render a trained NER pipeline's predictions on sample sentences to an HTML page (displaCy).

    python scripts/render_entities.py training/ner/model-best corpus/conll2003/valid.spacy ner_samples.html --n 30
"""
from pathlib import Path

import spacy
import typer
from benchmark_tagger import bare_docs, gold_sentences
from spacy import displacy

from spacy_rnn.files import atomic_output


def main(model: Path, corpus: Path, output: Path, n: int = typer.Option(30, help="Sentences to render")):
    nlp = spacy.load(model)
    bare = bare_docs(nlp, gold_sentences(nlp, corpus, n))
    predicted = list(nlp.pipe(bare))
    with atomic_output(output) as tmp:
        tmp.write_text(displacy.render(predicted, style="ent", page=True), encoding="utf8")
    typer.echo(f"Wrote {len(predicted)} sentences with {sum(len(d.ents) for d in predicted)} entities to {output}")


if __name__ == "__main__":
    typer.run(main)
