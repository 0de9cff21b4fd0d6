"""Command-line interface: thin typer commands over the library.

`python -m spacy_rnn train-lm | evaluate-lm | generate | annotate | quantize`; the same
commands are added to spaCy's CLI through the spacy_cli entry points as
`python -m spacy rnn-lm-train | rnn-lm-evaluate | rnn-lm-generate | rnn-annotate | rnn-quantize`.
"""
import typer


def make_app() -> typer.Typer:
    """The `python -m spacy_rnn` application."""
    from .annotate import annotate_command
    from .lm import COMMANDS
    from .quantize import quantize_command

    app = typer.Typer(name="spacy_rnn", help="spacy-rnn commands: language model, batch annotation, int8 copies", no_args_is_help=True)
    for name, function in COMMANDS.items():
        app.command(name)(function)
    app.command("annotate")(annotate_command)
    app.command("quantize")(quantize_command)
    return app
