"""Render a trained parser's dependency parses of the first test sentences to an HTML page (displaCy).

    python scripts/render_parses.py training/parser/model-best corpus/en_ewt-ud-test.spacy parses.html --n 10

The sentences keep the corpus's gold tokenization; the pipeline predicts everything else
(heads and labels, and the tags displaCy shows under the words).
"""
from pathlib import Path

import spacy
import typer
from benchmark_tagger import bare_docs, gold_sentences
from spacy import displacy

from spacy_rnn.files import atomic_output


def main(model: Path, corpus: Path, output: Path, n: int = typer.Option(10, help="Sentences to render")):
    nlp = spacy.load(model)
    bare = bare_docs(nlp, gold_sentences(nlp, corpus, n))
    parsed = list(nlp.pipe(bare))
    with atomic_output(output) as tmp:
        tmp.write_text(displacy.render(parsed, style="dep", page=True, options={"compact": True}), encoding="utf8")
    n_arcs = sum(1 for doc in parsed for token in doc if token.head.i != token.i)
    typer.echo(f"Wrote {len(parsed)} parsed sentences ({n_arcs} arcs) to {output}")


if __name__ == "__main__":
    typer.run(main)
