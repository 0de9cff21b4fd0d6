"""Render a trained NER pipeline's predictions on sample sentences to an HTML page (displaCy).

    python scripts/render_entities.py training/ner/model-best corpus/conll2003/valid.spacy ner_samples.html --n 30
"""
from pathlib import Path

import spacy
import typer
from spacy import displacy
from spacy.tokens import Doc, DocBin


def main(model: Path, corpus: Path, output: Path, n: int = typer.Option(30, help="Sentences to render")):
    nlp = spacy.load(model)
    sentences = []
    for doc in DocBin().from_disk(corpus).get_docs(nlp.vocab):
        sentences.extend(sent.as_doc() for sent in doc.sents)
        if len(sentences) >= n:
            break
    bare = [Doc(nlp.vocab, words=[t.text for t in s], spaces=[bool(t.whitespace_) for t in s]) for s in sentences[:n]]
    html = displacy.render(list(nlp.pipe(bare)), style="ent", page=True)
    output.write_text(html, encoding="utf8")
    typer.echo(f"Wrote {len(bare)} sentences with {sum(len(d.ents) for d in nlp.pipe(bare))} entities to {output}")


if __name__ == "__main__":
    typer.run(main)
