"""`python -m spacy_rnn annotate` and `python -m spacy rnn-annotate`: a thin
typer command over spacy_rnn.batch.annotate."""
import signal
from pathlib import Path
from typing import Optional

import typer
from spacy.cli import app as spacy_app

from ..batch.engines import Terminated
from ..batch.inputs import InputError


def annotate_command(
    model: str = typer.Argument(..., help="A spaCy pipeline: a directory or an installed package name"),
    input_spec: str = typer.Argument(..., metavar="INPUT", help="A file, a directory or a glob of .txt (one text per line), .jsonl (a 'text' field, other fields kept) or .spacy files"),
    output_dir: Path = typer.Argument(..., help="Where shards, rejects.jsonl and summary.json go"),
    fmt: str = typer.Option("spacy", "--format", help="spacy (DocBin shards, user data kept) or jsonl (tokens and what the pipeline sets; faster to write: README, Batch annotation)"),
    engine: str = typer.Option("local", help="local (this machine, --n-process processes) or ray (Ray Data, --workers actors)"),
    n_process: int = typer.Option(1, help="local: worker processes, each annotating whole shards (1: this process)"),
    workers: int = typer.Option(2, help="ray: actors, each with the pipeline loaded once"),
    address: Optional[str] = typer.Option(None, help="ray: address of an existing cluster (default: start a local one)"),
    shard_size: int = typer.Option(10_000, help="Records per output shard (the unit of resuming)"),
    max_length: Optional[int] = typer.Option(None, help="Longer texts are rejected (default: the pipeline's nlp.max_length, which a larger value raises)"),
    batch_size: int = typer.Option(256, help="nlp.pipe batch size"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal only)"),
    code: Optional[Path] = typer.Option(None, "--code", "-c", help="Path to a Python file with registered functions (custom components), imported in every process, as in spaCy's commands"),
) -> None:
    """Annotate large inputs with a spaCy pipeline, in resumable shards.

    Every input record becomes one output doc or one line of
    OUTPUT_DIR/rejects.jsonl (file, line, reason); OUTPUT_DIR/summary.json
    counts them. Run the same command again to resume an interrupted run."""
    from ..batch import annotate

    try:
        summary = annotate(
            model, input_spec, output_dir, fmt=fmt, engine=engine, n_process=n_process, workers=workers,
            address=address, shard_size=shard_size, max_length=max_length, batch_size=batch_size, progress=progress,
            code=code,
        )
    except Terminated:
        typer.echo(f"error: stopped by SIGTERM; the shards written are kept in {output_dir}: run the same command "
                   "again to resume", err=True)
        raise typer.Exit(128 + signal.SIGTERM) from None
    except (InputError, ValueError, RuntimeError, OSError) as err:  # OSError: a pipeline that does not load, a full disk
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    failed = summary["pipeline_rejects"]
    typer.echo(
        f"{summary['inputs']:,} inputs = {summary['outputs']:,} docs + {summary['rejects']:,} rejects"
        f"{f' ({failed:,} the pipeline raised on)' if failed else ''} in {summary['shards']:,} shards "
        f"({summary['shards_skipped']:,} already written); see {output_dir / 'summary.json'}"
    )
    if failed and not summary["outputs"]:  # not a few bad records: a pipeline that fails on everything
        typer.echo(f"error: the pipeline raised on every one of the {failed:,} docs it was given; see "
                   f"{output_dir / 'rejects.jsonl'}", err=True)
        raise typer.Exit(1)


spacy_app.command("rnn-annotate")(annotate_command)


def setup_annotate_cli() -> None:
    """The spacy_cli entry point: importing this module added the command to spaCy's CLI."""
