"""Tagging speed of a trained minGRU pipeline, its int8 copy, the LSTM and spaCy's CNN, measured
in processes that hold only those four pipelines, one process per training of the config.

    python scripts/benchmark_tagger_processes.py corpus training/benchmark metrics/benchmark_tagger_processes.json \\
        --config rnn_mingru_fast_bf16 --rounds 2

scripts/benchmark_tagger.py measures all the pipelines of a run in one process (10 to 16 of
them); a deployment runs one. Here each process loads spacy_cnn, rnn_lstm, one training of the
config (CONFIG, CONFIG_seed1, CONFIG_seed2: benchmark_tagger.py's systems, trained there) and its
int8 copy, and measures their words/s through nlp.pipe over EWT test as benchmark_tagger.py does
(SPEED_ROUNDS interleaved rounds; ratios are medians of per-round ratios). The processes run one
after the other, the trainings in turn, --rounds times.

--glibc-tunables runs the processes with that GLIBC_TUNABLES (glibc's malloc settings, e.g.
glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1000000000, which keeps freed
tensors' memory for the next batch instead of unmapping it and faulting it back in);
--keep-freed-memory has each process call spacy_rnn.keep_freed_memory() (the same settings through
mallopt) before it loads anything. The results record either.
"""
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import typer

BASELINES = ("spacy_cnn", "rnn_lstm")


def page_faults_of_pass(nlp, references) -> int:
    """The minor page faults of this process during one pass of the references through nlp.pipe
    (getrusage): memory the allocator handed back to the system and touches again."""
    import resource

    from benchmark_tagger import bare_docs, timed_pass

    docs = bare_docs(nlp, references)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    timed_pass(nlp, docs)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def measure(corpus: Path, training_dir: Path, system: str) -> Dict:
    """In this process: words/s rounds of the baselines, `system` and its int8 copy, and the ratios."""
    from benchmark_tagger import SYSTEMS, gold_sentences, load_trained, paired_ratio, words_per_second

    by_name = {s.name: s for s in SYSTEMS}
    names = [*BASELINES, system, f"{system}_int8"]
    pipelines = {name: load_trained(by_name[name], training_dir)[1] for name in names}
    references = gold_sentences(pipelines[system], corpus / "en_ewt-ud-test.spacy", 0)
    words_per_second(pipelines, references, rounds=1)  # warm-up
    speeds = words_per_second(pipelines, references)
    int8 = speeds[f"{system}_int8"]
    # after the timed rounds, one more pass of each, untimed: how often it page-faulted
    faults = {name: page_faults_of_pass(nlp, references) for name, nlp in pipelines.items()}
    return {"system": system, "words_per_second_rounds": speeds, "page_faults_per_pass": faults,
            "tag_vs_lstm": paired_ratio(speeds[system], speeds["rnn_lstm"]),
            "int8_vs_float": paired_ratio(int8, speeds[system]),
            "int8_vs_cnn": paired_ratio(int8, speeds["spacy_cnn"])}


# aim: (threshold, column)
AIMS = {"tag_vs_lstm": (1.5, "float vs rnn_lstm (≥ 1.5x)"), "int8_vs_float": (1.5, "int8 vs float (≥ 1.5x)"),
        "int8_vs_cnn": (3.0, "int8 vs spacy_cnn (≥ 3x)")}


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine", "processes": [{"system", "tag_vs_lstm",
    "int8_vs_float", "int8_vs_cnn", ...}]}, one line per process and a count of the aims met."""
    processes = data["processes"]
    faults = any("page_faults_per_pass" in row for row in processes)  # recorded since 2026-12-04 22:50 UTC
    lines = [f"Machine: {data['machine']}; processes in the order they ran", "",
             "| process | training | " + " | ".join(column for _, column in AIMS.values()) + " |"
             + (" page faults in a pass (float / int8) |" if faults else ""),
             "|---:|---|" + "---:|" * (len(AIMS) + faults)]
    for i, row in enumerate(processes, 1):
        cells = [f"{row[aim]:.2f}x" for aim in AIMS]
        if faults:
            counts = row.get("page_faults_per_pass")
            cells.append(f"{counts[row['system']]:,} / {counts[row['system'] + '_int8']:,}" if counts else "–")
        lines.append(f"| {i} | {row['system']} | " + " | ".join(cells) + " |")
    met = " | ".join(f"{sum(row[aim] >= threshold for row in processes)} of {len(processes)} "
                     f"(median {statistics.median(row[aim] for row in processes):.2f}x)"
                     for aim, (threshold, _) in AIMS.items())
    lines.append(f"| | at or above the aim | {met} |" + (" |" if faults else ""))
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-test.spacy"),
    training_dir: Path = typer.Argument(..., help="Where benchmark_tagger.py's trained pipelines are"),
    output: Path = typer.Argument(..., help="Results JSON"),
    config: str = typer.Option("rnn_mingru_fast_bf16", help="A benchmark_tagger.py system with _seed1, _seed2 and _int8 rows"),
    rounds: int = typer.Option(2, help="How many times to run a process per training"),
    glibc_tunables: str = typer.Option("", help="GLIBC_TUNABLES for the measuring processes (default: as this one has it)"),
    keep_freed_memory: bool = typer.Option(False, help="Each measuring process calls spacy_rnn.keep_freed_memory() first"),
    worker: str = typer.Option("", hidden=True, help="Measure this system in this process, print JSON"),
) -> None:
    if worker:
        if keep_freed_memory:
            from spacy_rnn import keep_freed_memory as keep

            if not keep():
                raise RuntimeError("spacy_rnn.keep_freed_memory() did not apply (not glibc, or malloc settings in the environment)")
        print(json.dumps(measure(corpus, training_dir, worker)))
        return
    import spacy
    import torch

    from benchmark_tagger import report

    env = dict(os.environ, GLIBC_TUNABLES=glibc_tunables) if glibc_tunables else None
    processes: List[Dict] = []
    for _ in range(rounds):
        for system in (config, f"{config}_seed1", f"{config}_seed2"):
            done = subprocess.run([sys.executable, __file__, str(corpus), str(training_dir), str(output), "--worker", system]
                                  + (["--keep-freed-memory"] if keep_freed_memory else []),
                                  capture_output=True, text=True, check=True, env=env)
            processes.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"process {len(processes)}: {system} " + ", ".join(f"{aim} {processes[-1][aim]:.2f}" for aim in AIMS), flush=True)
    tunables = glibc_tunables or os.environ.get("GLIBC_TUNABLES", "")
    malloc = (f"GLIBC_TUNABLES={tunables}" if tunables else "spacy_rnn.keep_freed_memory() in each process"
              if keep_freed_memory else "glibc's default malloc settings")
    machine = f"{platform.machine()}; torch {torch.__version__}, spaCy {spacy.__version__}; one torch thread per process; {malloc}"
    report(output, {"machine": machine, "glibc_tunables": tunables, "keep_freed_memory": keep_freed_memory,
                    "processes": processes}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
