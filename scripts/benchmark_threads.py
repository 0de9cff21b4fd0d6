"""How many torch threads should a process use? Training steps/s and tagging
words/s of the shipped tagger config with 1 and 2 torch threads, on an idle
machine (one process) and on a busy one (two identical processes at once).

    python scripts/benchmark_threads.py corpus metrics/benchmark_threads.json

Each measurement runs in its own process (`--worker`), which sets its thread
count with torch.set_num_threads before it builds anything. The model is
initialized on EWT train but not trained: speed does not depend on the weights.
"""
import json
import platform
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Dict, List

import typer

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "tagger.cfg"


def measure(corpus: Path, task: str, threads: int, steps: int) -> Dict[str, float]:
    """Runs inside a worker process."""
    import os

    os.environ["SPACY_RNN_NUM_THREADS"] = str(threads)  # spacy_rnn's thread policy applies it
    import spacy
    from spacy.training import Corpus
    from spacy.util import load_config, minibatch
    from spacy.training.initialize import init_nlp

    config = load_config(CONFIG, overrides={
        "paths.train": str(corpus / "en_ewt-ud-train.spacy"), "paths.dev": str(corpus / "en_ewt-ud-dev.spacy"),
    })
    nlp = init_nlp(config)
    train = list(Corpus(corpus / "en_ewt-ud-train.spacy", gold_preproc=True)(nlp))
    if task == "train":
        optimizer = nlp.create_optimizer()
        batches = list(islice(minibatch(train, 32), steps + 3))
        for batch in batches[:3]:  # warm up
            nlp.update(batch, sgd=optimizer)
        start = time.perf_counter()
        n_words = 0
        for batch in batches[3:]:
            nlp.update(batch, sgd=optimizer)
            n_words += sum(len(eg.predicted) for eg in batch)
        seconds = time.perf_counter() - start
        return {"steps_per_second": steps / seconds, "words_per_second": n_words / seconds}
    test = [eg.reference for eg in Corpus(corpus / "en_ewt-ud-test.spacy", gold_preproc=True)(nlp)]
    texts = [spacy.tokens.Doc(nlp.vocab, words=[t.text for t in d]) for d in test]
    list(nlp.pipe(texts[:100]))  # warm up
    best = float("inf")
    for _ in range(2):
        docs = [spacy.tokens.Doc(nlp.vocab, words=[t.text for t in d]) for d in test]
        start = time.perf_counter()
        for _ in nlp.pipe(docs, batch_size=1000):
            pass
        best = min(best, time.perf_counter() - start)
    return {"words_per_second": sum(len(d) for d in test) / best}


def run(corpus: Path, task: str, threads: int, n_processes: int, steps: int) -> List[Dict[str, float]]:
    """n_processes identical workers at once; the result of each."""
    cmd = [sys.executable, __file__, str(corpus), "-", "--worker", task, "--threads", str(threads), "--steps", str(steps)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n_processes)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"worker failed: {' '.join(cmd)}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "config": str, "rows": [{"task",
    "machine" (idle|busy), "processes", "threads", "words_per_second_per_process"}]}: one line per
    task and load, words/s per process for each thread count, and each count against the lowest."""
    counts = sorted({row["threads"] for row in data["rows"]})
    cells: Dict = {}
    for row in data["rows"]:
        key = (row["task"], row["machine"], row["processes"])
        cells.setdefault(key, {})[row["threads"]] = row["words_per_second_per_process"]
    low = counts[0] if counts else 1
    lines = [
        f"Machine: {data['machine']}; config {data['config']}",
        "",
        "| task | machine | processes | "
        + " | ".join(f"words/s per process, {n} thread{'s' if n != 1 else ''}" for n in counts)
        + "".join(f" | {n} threads vs {low}" for n in counts[1:]) + " |",
        "|---|---|---:|" + "---:|" * (2 * len(counts) - 1),
    ]
    for (task, load, processes), speeds in cells.items():
        values = [f"{speeds[n]:,.0f}" if n in speeds else "–" for n in counts]
        ratios = [
            f"{speeds[n] / speeds[low]:.2f}x" if n in speeds and speeds.get(low) else "–" for n in counts[1:]
        ]
        lines.append(f"| {task} | {load} | {processes} | " + " | ".join(values + ratios) + " |")
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-{train,dev,test}.spacy"),
    output: Path = typer.Argument(..., help="JSON file for the results ('-' in a worker)"),
    worker: str = typer.Option("", help="internal: run one measurement (train|predict) and print it"),
    threads: int = typer.Option(1, help="internal: torch threads of the worker"),
    steps: int = typer.Option(40, help="Timed training steps (batches of 32 docs)"),
):
    if worker:
        print(json.dumps(measure(corpus, worker, threads, steps)), flush=True)
        return
    rows = []
    for task in ("train", "predict"):
        for n_processes, load in ((1, "idle"), (2, "busy")):
            for n_threads in (1, 2):
                results = run(corpus, task, n_threads, n_processes, steps)
                wps = sum(r["words_per_second"] for r in results) / len(results)
                rows.append({"task": task, "machine": load, "processes": n_processes, "threads": n_threads,
                             "words_per_second_per_process": wps, "raw": results})
                print(f"{task:8} {load:5} {n_processes} process(es) x {n_threads} thread(s): {wps:,.0f} words/s each", flush=True)
    import torch

    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}; torch {torch.__version__}"
    data = {"machine": machine, "config": str(CONFIG.relative_to(REPO)), "rows": rows}
    print(render_markdown(data))
    # Imported here, not at the top: a worker must set its thread count before spacy_rnn is imported.
    from spacy_rnn.files import atomic_output  # written beside, renamed into place: never a truncated file

    with atomic_output(output) as tmp:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
