"""`python -m spacy_rnn quantize MODEL OUTPUT` and `python -m spacy rnn-quantize`:
write a copy of a pipeline with int8 Linear weights (spacy_rnn.pipeline.quantize)."""
from pathlib import Path

import typer
from spacy.cli import app as spacy_app


def quantize_command(
    model: str = typer.Argument(..., help="A trained spaCy pipeline (directory or package name)"),
    output_dir: Path = typer.Argument(..., help="Where the int8 copy goes: a new or empty directory (see --force)"),
    force: bool = typer.Option(False, "--force", "-f", help="Replace OUTPUT if it is a directory holding a spaCy pipeline (an earlier int8 copy); never a file or another folder"),
) -> None:
    """Write an int8 copy of a pipeline for faster CPU prediction.

    Every nn.Linear of its spacy_rnn components (all the weights of
    mingru/minlstm cells) and their softmax output layers stored as int8. Load it with
    spacy.load like any pipeline. OUTPUT is written whole or not at all, and
    refused (before MODEL is loaded, if MODEL is a directory) where it would
    lose something: an existing file, a non-empty directory (without
    --force), a place inside MODEL or holding it."""
    import spacy

    from ..pipeline.quantize import check_int8_output, has_int8_weights, quantize_pipeline, save_int8

    try:
        # Checked before loading too (save_int8 checks again, against the loaded pipeline's own path),
        # so a refusal costs no load; MODEL may be a package name, which has no path here.
        check_int8_output(output_dir, model if Path(model).exists() else None, force=force)
        nlp = quantize_pipeline(spacy.load(model))
        if not has_int8_weights(nlp):
            raise ValueError(f"no component of {model} takes int8 weights (spacy-rnn components with mingru or "
                             "minlstm cells, or a softmax output layer, do); nothing written")
        save_int8(nlp, output_dir, force=force)
    except (ValueError, RuntimeError, OSError) as err:  # OSError: a pipeline that does not load, a full disk
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote the int8 pipeline to {output_dir}")


spacy_app.command("rnn-quantize")(quantize_command)


def setup_quantize_cli() -> None:
    """The spacy_cli entry point: importing this module added the command to spaCy's CLI."""
