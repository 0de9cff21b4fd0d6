"""Seconds per `spacy train` step of a config with and without bf16_training (the linear-recurrence
layers' projections in bfloat16 in training), on this machine.

    python scripts/benchmark_bf16_training.py corpus metrics/benchmark_bf16_training.json --steps 2000

Each training runs in its own process through spaCy's own loop (benchmark_memory.py's worker: no
output directory, evaluation only at step 0, the time and resident memory recorded at every step),
one after the other in the order float32, bfloat16, bfloat16, float32 (repeated --rounds times),
so that a drift of the machine's speed over the run weighs on both settings alike. Reported per
training: seconds per step after benchmark_memory's warm-up and resident memory; and the ratio of
the settings' mean seconds per step.
"""
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import typer

from benchmark_memory import REPO, summarize
from benchmark_tagger import report

MEMORY_SCRIPT = Path(__file__).resolve().parent / "benchmark_memory.py"
SETTING = "components.tagger.model.encoder.bf16_training"
ORDER = (False, True, True, False)


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine", "config", "runs": [{"bf16_training",
    "seconds_per_step", "rss_mb_peak", "steps"}], "speedup"}."""
    lines = [
        f"Machine: {data['machine']}; `spacy train {data['config']}`, runs in the order they ran",
        "",
        "| run | bf16_training | steps | seconds per step | peak resident MB |",
        "|---:|---|---:|---:|---:|",
    ]
    for i, run in enumerate(data["runs"], 1):
        lines.append(f"| {i} | {str(run['bf16_training']).lower()} | {run['steps']:,} | {run['seconds_per_step']:.4f} | "
                     f"{run['rss_mb_peak']:,.0f} |")
    lines += ["", f"Mean seconds per step, float32 / bfloat16: **{data['speedup']:.2f}x**"]
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-train.spacy and en_ewt-ud-dev.spacy"),
    output: Path = typer.Argument(..., help="Results JSON"),
    steps: int = typer.Option(2000, help="Training steps per run"),
    config: Path = typer.Option(REPO / "configs" / "tagger_mingru.cfg", help="A tagger config with a linear-recurrence encoder"),
    rounds: int = typer.Option(1, help="How many times to run the four trainings (float32, bf16, bf16, float32)"),
) -> None:
    import spacy
    import torch

    config = config.resolve()
    runs: List[Dict] = []
    for bf16 in ORDER * rounds:
        samples_path = output.with_suffix(".tmp")
        subprocess.run(
            [sys.executable, str(MEMORY_SCRIPT), str(corpus), str(output), "--steps", str(steps), "--config", str(config),
             "--worker-out", str(samples_path), "--worker-overrides", json.dumps({SETTING: bf16})],
            check=True,
        )
        runs.append({"bf16_training": bf16, **summarize(json.loads(samples_path.read_text()))})
        samples_path.unlink()
    mean = {bf16: statistics.mean(run["seconds_per_step"] for run in runs if run["bf16_training"] is bf16) for bf16 in (False, True)}
    data = {
        "machine": f"{platform.machine()}; torch {torch.__version__}, spaCy {spacy.__version__}; each training "
                   "with spacy_rnn's torch thread policy (one thread unless SPACY_RNN_NUM_THREADS says otherwise)",
        "config": config.relative_to(REPO).as_posix() if config.is_relative_to(REPO) else str(config),
        "runs": runs,
        "speedup": mean[False] / mean[True],
    }
    report(output, data, render_markdown)


if __name__ == "__main__":
    typer.run(main)
