"""Command-line use of the language model: train on a tokenized corpus with
truncated BPTT, evaluate perplexity on text files, and generate text. Thin
typer commands over spacy_rnn.training.lm_pipeline.

The commands are registered twice: as ``python -m spacy_rnn train-lm |
evaluate-lm | generate`` and, through the ``spacy_cli`` entry point, as
``python -m spacy rnn-lm-train | rnn-lm-evaluate | rnn-lm-generate``.
"""
from pathlib import Path
from typing import Dict, List, NoReturn, Optional

import spacy
import typer
from spacy.cli import app as spacy_app

from ..training.lm import LMConfig
from ..training.lm_pipeline import evaluate_pipeline, run_training, write_json


# Typer commands, shared by `python -m spacy_rnn` and `python -m spacy`.


def train_lm_command(
    train_path: Path = typer.Argument(..., help="Tokenized training text, one sentence per line (e.g. ptb.train.txt)", exists=True),
    valid_path: Path = typer.Argument(..., help="Tokenized validation text", exists=True),
    output_dir: Path = typer.Argument(..., help="Where model-best/, model-last/, checkpoint.pt and training.json go"),
    cell: str = typer.Option("lstm", help="rnn, lstm, gru, mingru or minlstm"),
    depth: int = typer.Option(2, min=1, max=4, help="Recurrent layers (1-4)"),
    width: int = typer.Option(200, min=1, help="Hidden width"),
    embed_width: int = typer.Option(200, min=1, help="Word embedding width"),
    embed_dropout: float = typer.Option(0.0, min=0.0, max=1.0, help="Dropout on the embeddings"),
    dropout: float = typer.Option(0.0, min=0.0, max=1.0, help="Dropout between recurrent layers"),
    output_dropout: float = typer.Option(0.0, min=0.0, max=1.0, help="Dropout before the output layer"),
    tie_weights: bool = typer.Option(False, "--tie-weights/--no-tie-weights", help="Share input and output embeddings"),
    max_vocab: int = typer.Option(
        10_000, min=3, help="Vocabulary size, <unk> and <eos> included (so at least 3: they and one word)",
    ),
    optimizer: str = typer.Option("sgd", help="sgd or adam"),
    lr: float = typer.Option(20.0, min=0.0, help="Learning rate (on the mean per-token loss)"),
    clip: float = typer.Option(0.25, min=0.0, help="Global gradient-norm clipping; 0 disables"),
    decay_start: int = typer.Option(5, min=1, help="From this epoch on (the first is 1), multiply lr by --decay-factor every epoch"),
    decay_factor: float = typer.Option(0.5, min=0.0, help="Per-epoch lr decay from --decay-start; 1 disables"),
    plateau_factor: float = typer.Option(4.0, min=1.0, help="Divide lr by this when validation does not improve; 1 disables"),
    epochs: int = typer.Option(13, min=1, help="Epochs"),
    batch_size: int = typer.Option(20, min=1, help="Columns of the training stream"),
    bptt: int = typer.Option(20, min=1, help="Steps per truncated-BPTT chunk"),
    seed: int = typer.Option(0, help="Random seed"),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue from output_dir/checkpoint.pt; the corpus files and options must be those the run started with",
    ),
    max_minutes: Optional[float] = typer.Option(None, min=0.0, help="Stop after this much wall time"),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Stop after this many TBPTT steps"),
    limit_tokens: Optional[int] = typer.Option(None, min=1, help="Smoke test: use only the first N training tokens"),
    checkpoint_minutes: float = typer.Option(
        5.0, help="Also checkpoint within an epoch this often; a negative value: only after each epoch and when a budget stops the run",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar"),
) -> None:
    """Train a word-level recurrent language model with truncated BPTT.

    Saves the best one as a spaCy pipeline with an rnn_lm component. If the
    loss diverges, training stops and model-best stays that of the last good
    epoch."""
    try:  # settings that do not go together, a --resume that does not match, a corpus that does not read
        config = LMConfig(
            cell=cell, depth=depth, width=width, embed_width=embed_width, embed_dropout=embed_dropout,
            dropout=dropout, output_dropout=output_dropout, tie_weights=tie_weights, max_vocab=max_vocab,
            optimizer=optimizer, lr=lr, clip=clip, decay_start=decay_start, decay_factor=decay_factor,
            plateau_factor=plateau_factor, epochs=epochs, batch_size=batch_size, bptt=bptt, seed=seed,
        )
        summary = run_training(
            train_path, valid_path, output_dir, config, resume=resume, max_minutes=max_minutes,
            max_steps=max_steps, limit_tokens=limit_tokens, checkpoint_minutes=checkpoint_minutes, progress=progress,
        )
    except (ValueError, OSError) as err:
        fail(str(err))
    if summary["diverged"] is not None:
        kept = (
            f"model-best is from epoch {summary['best_epoch']}" if summary["best_epoch"] is not None
            else "no epoch had a finite validation perplexity, so no model-best was saved"
        )
        typer.echo(
            f"training diverged: {summary['diverged']}. Stopped; {kept} (valid perplexity "
            f"{summary['best_valid_perplexity']:.2f}), model-last was not written, and checkpoint.pt was not "
            f"overwritten with the diverged state. Try a lower --lr or --clip."
        )
        return
    typer.echo(finished_line(summary, output_dir))


def finished_line(summary: Dict, output_dir: Path) -> str:
    """train-lm's last line: model-best's validation perplexity and the epoch it is from (a part
    of one, if the budget stopped it), the epochs completed, the speed and where it is saved."""
    best = next((entry for entry in summary["history"] if entry["epoch"] == summary["best_epoch"]), None)
    speed = f"{summary['epochs_done']} epochs complete, {summary['tokens_per_second']:,.0f} tok/s, {summary['wall_seconds']:.0f} s"
    if best is None:
        return f"no epoch was validated with a finite perplexity, so no model-best was saved; {speed}"
    part = "" if best["complete"] else " (part of it: stopped by the budget)"
    return (
        f"best valid perplexity {summary['best_valid_perplexity']:.2f}, from epoch {best['epoch']}{part}; {speed}; "
        f"saved {output_dir / 'model-best'}"
    )


def evaluate_lm_command(
    model_path: Path = typer.Argument(..., help="A pipeline with an rnn_lm", exists=True),
    # No exists=True: a missing file is one file's error, not the whole command's (see the docstring).
    text_paths: List[Path] = typer.Argument(..., help="Tokenized text files (one sentence/paragraph per line)"),
    batch_size: int = typer.Option(10, min=1, help="Columns the stream is read in (1 is exact, slower)"),
    bptt: int = typer.Option(35, min=1, help="Steps per chunk"),
    output: Optional[Path] = typer.Option(None, help="Write the results as JSON"),
) -> None:
    """Perplexity of a saved rnn_lm on text files, and their out-of-vocabulary rate.

    A file that cannot be evaluated (missing, unreadable, not UTF-8, no
    words) gets an error entry; the others are still evaluated, and the
    command exits with 1 after printing (and writing) all results. A
    pipeline that does not load or has no rnn_lm is one error line, exit 1."""
    try:
        # evaluate_pipeline catches each file's errors itself: what reaches here is the pipeline's.
        results = evaluate_pipeline(model_path, list(text_paths), batch_size=batch_size, bptt=bptt)
    except (ValueError, OSError) as err:
        fail(f"{model_path}: {err}")
    failed = 0
    for path, result in results.items():
        if "error" in result:
            failed += 1
            error = result["error"]
            typer.echo(error if error.startswith(f"{path}:") else f"{path}: {error}", err=True)
            continue
        typer.echo(
            f"{path}: perplexity {result['perplexity']:.2f} on {result['tokens']:,} tokens, "
            f"OOV {100 * result['oov_rate']:.2f}% (<unk> {100 * result['unk_rate']:.2f}%)"
        )
    if output is not None:
        write_json(output, results)
    if failed:
        typer.echo(f"{failed} of {len(results)} files failed", err=True)
        raise typer.Exit(1)


def generate_command(
    model_path: Path = typer.Argument(..., help="A pipeline with an rnn_lm", exists=True),
    prompt: str = typer.Option("", help="Text to continue"),
    n_words: int = typer.Option(50, min=0, help="Words to generate"),
    temperature: float = typer.Option(1.0, min=0.0, help="Sampling temperature; 0 takes the most likely word"),
    seed: int = typer.Option(0, help="Random seed: the same seed gives the same text"),
) -> None:
    """Sample text from a saved rnn_lm.

    A pipeline that does not load or has no rnn_lm is one error line, exit 1."""
    from ..pipeline.lm import generate

    try:  # bytes that are not UTF-8 reach Python's argv as lone surrogates, which no text holds
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:
        fail(f"--prompt is not UTF-8 text: character {err.start + 1} stands for a byte that UTF-8 has no character for")
    try:
        text = generate(spacy.load(model_path), prompt, n_words, temperature, seed)
    except (ValueError, OSError) as err:  # OSError: not a pipeline; ValueError: no rnn_lm, an infinite temperature
        fail(f"{model_path}: {err}")
    typer.echo(text)


def fail(message: str) -> NoReturn:
    """One `error: ...` line on stderr and exit 1, as the quantize command does (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


COMMANDS = {
    "train-lm": train_lm_command,
    "evaluate-lm": evaluate_lm_command,
    "generate": generate_command,
}


def make_app() -> typer.Typer:
    """The `python -m spacy_rnn` application (spacy_rnn.cli.make_app)."""
    from . import make_app as make_full_app

    return make_full_app()


for _name, _function in COMMANDS.items():
    spacy_app.command(f"rnn-lm-{_name.replace('-lm', '')}")(_function)


def setup_lm_cli() -> None:
    """The spacy_cli entry point: importing this module added the commands to spaCy's CLI."""
