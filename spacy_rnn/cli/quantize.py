"""`python -m spacy_rnn quantize MODEL OUTPUT` and `python -m spacy rnn-quantize`:
write a copy of a pipeline with int8 Linear weights (spacy_rnn.pipeline.quantize)."""
from pathlib import Path

import typer
from spacy.cli import app as spacy_app


def quantize_command(
    model: str = typer.Argument(..., help="A trained spaCy pipeline (directory or package name)"),
    output_dir: Path = typer.Argument(..., help="Where the int8 copy goes"),
) -> None:
    """Write an int8 copy of a pipeline for faster CPU prediction.

    Every nn.Linear of its spacy_rnn components (all the weights of
    mingru/minlstm cells) and their output layers stored as int8. Load it with
    spacy.load like any pipeline."""
    import spacy

    from ..pipeline.quantize import quantize_pipeline, save_int8

    nlp = quantize_pipeline(spacy.load(model))
    save_int8(nlp, output_dir)
    typer.echo(f"wrote the int8 pipeline to {output_dir}")


spacy_app.command("rnn-quantize")(quantize_command)


def setup_quantize_cli() -> None:
    """The spacy_cli entry point: importing this module added the command to spaCy's CLI."""
