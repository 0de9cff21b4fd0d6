"""Memory of `spacy train` on the shared-encoder config (configs/parser_tagger_rnn.cfg:
spaCy's tagger, morphologizer and parser listening to one spacy_rnn.RNNEncoder.v2), or
another config (--config), with
glibc's dynamic mmap threshold (SPACY_RNN_MMAP_THRESHOLD=0) and with fixed thresholds as
spacy_rnn's heap policy sets them (spacy_rnn/runtime.py).

    python scripts/benchmark_memory.py corpus metrics/benchmark_memory.json --steps 300
    python scripts/benchmark_memory.py corpus metrics/benchmark_memory_mingru.json --steps 1500 \
        --config configs/tagger_mingru.cfg --settings glibc_dynamic,fixed_64kib

Each setting trains in its own process through spaCy's own training loop (spacy.cli.train
with no output directory, evaluation only at step 0), one after the other; a
[training.before_update] callback records the resident memory (VmRSS) and the time at every
step. Reported: resident memory at the first step and after the last, its growth per step,
and seconds per step after a warm-up, with the speed as a ratio between the two settings.
"""
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import typer
from spacy.util import registry

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "parser_tagger_rnn.cfg"
# Setting name -> SPACY_RNN_MMAP_THRESHOLD (bytes; "0" leaves glibc's dynamic threshold).
SETTINGS = {
    "glibc_dynamic": "0",
    "fixed_64kib": str(64 * 2**10),
    "fixed_4mib": str(4 * 2**20),
    "fixed_16mib": str(16 * 2**20),
}
BASELINE = "glibc_dynamic"
WARMUP = 20  # steps left out of the time per step

_samples: List[List[float]] = []


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@registry.callbacks("benchmark_memory.record.v1")
def make_recorder():
    def record(nlp, info) -> None:
        _samples.append([info["step"], time.perf_counter(), resident_mb()])

    return record


def worker(config: Path, corpus: Path, steps: int, out: Path, extra: Optional[Dict[str, object]] = None) -> None:
    """Train `steps` steps of config (its settings changed by `extra`) recording every step."""
    from spacy.cli.train import train

    overrides = {
        **(extra or {}),
        "paths.train": str(corpus / "en_ewt-ud-train.spacy"),
        "paths.dev": str(corpus / "en_ewt-ud-dev.spacy"),
        "training.max_steps": steps,
        "training.eval_frequency": steps + 1,
        "training.optimizer.learn_rate.total_steps": steps,
        "training.before_update": {"@callbacks": "benchmark_memory.record.v1"},
    }
    train(config, None, overrides=overrides)
    out.write_text(json.dumps(_samples))


def summarize(samples: List[List[float]]) -> Dict[str, float]:
    steps = [s for s in samples if s[0] >= WARMUP]
    first, last = samples[0], samples[-1]
    return {
        "steps": int(last[0]) + 1,
        "rss_mb_first_step": first[2],
        "rss_mb_last_step": last[2],
        "rss_mb_peak": max(s[2] for s in samples),
        "rss_mb_growth_per_step": (last[2] - first[2]) / max(last[0] - first[0], 1),
        "seconds_per_step": (steps[-1][1] - steps[0][1]) / max(steps[-1][0] - steps[0][0], 1),
    }


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "config": str, "settings":
    {name: {"description", "steps", "rss_mb_first_step", "rss_mb_last_step", "rss_mb_peak",
    "rss_mb_growth_per_step", "seconds_per_step"}}}; speed as a ratio to glibc_dynamic."""
    rows = data["settings"]
    base = rows.get(BASELINE, {}).get("seconds_per_step")
    lines = [
        f"Machine: {data['machine']}; `spacy train {data['config']}`",
        "",
        "| setting | steps | resident MB, first step | resident MB, last step | peak MB | MB per step | "
        f"seconds per step | speed vs {BASELINE} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        speed = f"{base / row['seconds_per_step']:.2f}x" if base else "–"
        lines.append(
            f"| {name} ({row['description']}) | {row['steps']:,} | {row['rss_mb_first_step']:,.0f} | "
            f"{row['rss_mb_last_step']:,.0f} | {row['rss_mb_peak']:,.0f} | {row['rss_mb_growth_per_step']:.2f} | "
            f"{row['seconds_per_step']:.3f} | {speed} |"
        )
    return "\n".join(lines)


def describe(threshold: str) -> str:
    from spacy_rnn.runtime import DEFAULT_MMAP_THRESHOLD

    if threshold == "0":
        return "SPACY_RNN_MMAP_THRESHOLD=0: glibc's dynamic mmap threshold"
    default = ", spacy-rnn's default" if int(threshold) == DEFAULT_MMAP_THRESHOLD else ""
    size = f"{int(threshold) // 2**20} MiB" if int(threshold) >= 2**20 else f"{int(threshold) // 2**10} KiB"
    return f"SPACY_RNN_MMAP_THRESHOLD={threshold}: a fixed {size} mmap threshold{default}"


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-train.spacy and en_ewt-ud-dev.spacy"),
    output: Path = typer.Argument(..., help="Results JSON"),
    steps: int = typer.Option(300, help="Training steps per setting"),
    config: Path = typer.Option(CONFIG, help="The training config"),
    settings: str = typer.Option("glibc_dynamic,fixed_4mib,fixed_16mib", help=f"Comma-separated, from {', '.join(SETTINGS)}"),
    worker_out: Path = typer.Option(None, hidden=True),
    worker_overrides: str = typer.Option("{}", hidden=True, help="JSON: config settings the worker changes"),
) -> None:
    if worker_out is not None:
        worker(config, corpus, steps, worker_out, json.loads(worker_overrides))
        return
    chosen = settings.split(",")
    unknown = sorted(set(chosen) - set(SETTINGS))
    if unknown:
        raise typer.BadParameter(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    config = config.resolve()
    import spacy
    import torch

    results = {}
    for name in chosen:
        threshold = SETTINGS[name]
        samples_path = output.with_suffix(f".{name}.tmp")
        subprocess.run(
            [sys.executable, __file__, str(corpus), str(output), "--steps", str(steps), "--config", str(config),
             "--worker-out", str(samples_path)],
            check=True, env={**os.environ, "SPACY_RNN_MMAP_THRESHOLD": threshold},
        )
        results[name] = {"description": describe(threshold), **summarize(json.loads(samples_path.read_text()))}
        samples_path.unlink()
    data = {
        "machine": f"{platform.machine()}, {platform.libc_ver()[0]} {platform.libc_ver()[1]}; torch {torch.__version__}, "
                   f"spaCy {spacy.__version__}",
        "config": config.relative_to(REPO).as_posix() if config.is_relative_to(REPO) else str(config),
        "settings": results,
    }
    data["table"] = render_markdown(data)
    output.write_text(json.dumps(data, indent=1) + "\n")
    print(data["table"])


if __name__ == "__main__":
    typer.run(main)
