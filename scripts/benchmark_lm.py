"""Benchmark the rnn_lm on Penn Treebank: train each cell type (rnn, gru,
lstm) with the same recipe and wall-time budget, then report PTB valid/test
perplexity, WikiText-2 valid/test perplexity with the out-of-vocabulary rate
(an out-of-domain figure: PTB's lower-cased 10k vocabulary, numbers as N),
training tokens/s and wall time. Prints a markdown table, writes JSON.

    python scripts/benchmark_lm.py --max-minutes 30
    python scripts/benchmark_lm.py --max-minutes 0.2 --limit-tokens 20000 --cells lstm   # smoke test

Reference points (PTB test perplexity): KN5 141.2, RNN LM 124.7 (Mikolov
2012), 2x200 LSTM 114.5 (Zaremba et al. 2014, "small", the default recipe).
"""
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
import typer

from spacy_rnn.cli.lm import evaluate_pipeline, run_training
from spacy_rnn.lm import LMConfig

DATA = Path(__file__).parent.parent.parent / "shared" / "data"


def main(
    cells: str = typer.Option("rnn,gru,lstm", help="Comma-separated cells to train"),
    max_minutes: float = typer.Option(30.0, help="Training wall-time budget per cell"),
    limit_tokens: Optional[int] = typer.Option(None, help="Smoke test: first N training tokens only"),
    ptb_dir: Path = typer.Option(DATA / "ptb_lm", help="ptb.{train,valid,test}.txt"),
    wikitext_dir: Path = typer.Option(DATA / "wikitext2", help="WikiText-2 valid.txt and test.txt"),
    out_dir: Path = typer.Option(Path("training/lm_benchmark"), help="Models and checkpoints"),
    output: Path = typer.Option(Path("metrics/lm_benchmark.json"), help="JSON results"),
    depth: int = typer.Option(2),
    width: int = typer.Option(200),
    embed_width: int = typer.Option(200),
    dropout: float = typer.Option(0.0, help="Between layers"),
    embed_dropout: float = typer.Option(0.0),
    output_dropout: float = typer.Option(0.0),
    tie_weights: bool = typer.Option(False, "--tie-weights/--no-tie-weights"),
    lr: float = typer.Option(20.0),
    clip: float = typer.Option(0.25),
    decay_start: int = typer.Option(5),
    decay_factor: float = typer.Option(0.5),
    plateau_factor: float = typer.Option(4.0),
    epochs: int = typer.Option(13),
    batch_size: int = typer.Option(20),
    bptt: int = typer.Option(20),
    seed: int = typer.Option(0),
    eval_batch_size: int = typer.Option(1, help="Columns for the final evaluation; 1 is exact"),
    resume: bool = typer.Option(False, "--resume", help="Continue each cell from its checkpoint"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    rows = []
    for cell in [c.strip() for c in cells.split(",") if c.strip()]:
        config = LMConfig(
            cell=cell, depth=depth, width=width, embed_width=embed_width, dropout=dropout,
            embed_dropout=embed_dropout, output_dropout=output_dropout, tie_weights=tie_weights, lr=lr,
            clip=clip, decay_start=decay_start, decay_factor=decay_factor, plateau_factor=plateau_factor,
            epochs=epochs, batch_size=batch_size, bptt=bptt, seed=seed,
        )
        typer.echo(f"== {cell}: {json.dumps(asdict(config))}")
        tic = time.perf_counter()
        summary = run_training(
            ptb_dir / "ptb.train.txt", ptb_dir / "ptb.valid.txt", out_dir / cell, config,
            resume=resume, max_minutes=max_minutes, limit_tokens=limit_tokens, progress=progress,
        )
        train_wall = time.perf_counter() - tic
        files = {
            "ptb_valid": ptb_dir / "ptb.valid.txt",
            "ptb_test": ptb_dir / "ptb.test.txt",
            "wt2_valid": wikitext_dir / "valid.txt",
            "wt2_test": wikitext_dir / "test.txt",
        }
        tic = time.perf_counter()
        evaluated = evaluate_pipeline(out_dir / cell / "model-best", list(files.values()), batch_size=eval_batch_size, bptt=bptt)
        eval_wall = time.perf_counter() - tic
        row = {
            "cell": cell,
            "epochs": summary["epochs_done"] + (0.5 if summary["stopped_by_budget"] else 0.0),
            "train_tokens": summary["train_tokens"],
            "tokens_per_second": summary["tokens_per_second"],
            "train_wall_seconds": round(train_wall, 1),
            "eval_wall_seconds": round(eval_wall, 1),
            "config": summary["config"],
            "history": summary["history"],
        }
        for key, path in files.items():
            result = evaluated[str(path)]
            row[f"{key}_ppl"] = round(result["perplexity"], 2)
            row[f"{key}_oov"] = round(result["oov_rate"], 4)
        rows.append(row)
        typer.echo(json.dumps({k: v for k, v in row.items() if k not in ("config", "history")}))
    table = [
        "| cell | epochs | PTB valid | PTB test | WT2 valid (OOV) | WT2 test (OOV) | tokens/s | train wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        epochs_text = f"{r['epochs']:g}" if r["epochs"] == int(r["epochs"]) else f"<{int(r['epochs']) + 1}"
        table.append(
            f"| {r['cell']} | {epochs_text} | {r['ptb_valid_ppl']:.1f} | {r['ptb_test_ppl']:.1f} | "
            f"{r['wt2_valid_ppl']:.1f} ({100 * r['wt2_valid_oov']:.1f}%) | {r['wt2_test_ppl']:.1f} ({100 * r['wt2_test_oov']:.1f}%) | "
            f"{r['tokens_per_second']:,.0f} | {r['train_wall_seconds'] / 60:.1f} min |"
        )
    typer.echo("\n".join(table))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "max_minutes": max_minutes,
        "limit_tokens": limit_tokens,
        "machine": {"cpus": torch.get_num_threads(), "torch": torch.__version__, "platform": platform.platform()},
        "results": rows,
        "table": table,
    }, indent=2))
    typer.echo(f"wrote {output}")


if __name__ == "__main__":
    typer.run(main)
