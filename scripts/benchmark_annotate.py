"""Throughput of `python -m spacy_rnn annotate` with the trained tagger and NER
pipelines: local 1 process, local --n-process 2 (worker processes over whole
shards since 2026-12-05; spaCy's nlp.pipe(n_process=2) in the runs before),
and Ray with 2 workers on this machine; --runs can add the two local runs with
--format jsonl (the others write DocBin shards) and --pipelines run one of the
two. Each run is a fresh command on the same input; nothing else should run
meanwhile.

    pip install -e '.[ray]'
    python scripts/benchmark_annotate.py training/benchmark/rnn_lstm/model-best training/benchmark_ner/conll2003/rnn_ner_crf_lstm_reg/model-best metrics/benchmark_annotate.json

Input: the sentences of UD English-EWT (train/dev/test `# text`), CoNLL-2003
(train/valid, tokens joined by spaces) and the PTB LM text (one line each),
written `--repeats` times (3: about 250,000 sentences) as .txt files under
--work-dir. Reported per run: docs/s and words/s end to end (wall time of the
whole command, startup included) and after startup (wall time minus the
startup time), startup time (the same command on a 1-line input: Python,
the pipeline, Ray), and the peak resident memory (VmHWM) of the largest
process that annotates (the main process; spaCy's worker processes for
--n-process 2; Ray's actors), read from /proc (Linux).
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import typer

from benchmark_tagger import machine_description, report

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
RUNS = [
    # name, extra arguments
    ("local 1 process", ["--engine", "local"]),
    ("local --n-process 2", ["--engine", "local", "--n-process", "2"]),
    ("ray 2 workers", ["--engine", "ray", "--workers", "2"]),
    ("local 1 process (jsonl)", ["--engine", "local", "--format", "jsonl"]),
    ("local --n-process 2 (jsonl)", ["--engine", "local", "--n-process", "2", "--format", "jsonl"]),
]
DEFAULT_RUNS = RUNS[:3]  # the runs of metrics/benchmark_annotate.json


def corpus_sentences(data: Path) -> Dict[str, List[str]]:
    ewt = []
    for split in ("train", "dev", "test"):
        for line in (data / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu").read_text(encoding="utf8").splitlines():
            if line.startswith("# text = "):
                ewt.append(line[len("# text = "):])
    conll = []
    for split in ("train", "valid"):
        words: List[str] = []
        for line in (data / "conll2003" / f"{split}.txt").read_text(encoding="utf8").splitlines() + [""]:
            if not line.strip():
                if words and words[0] != "-DOCSTART-":
                    conll.append(" ".join(words))
                words = []
            else:
                words.append(line.split(" ")[0])
    ptb = []
    for split in ("train", "valid", "test"):
        ptb += [line.strip() for line in (data / "ptb_lm" / f"ptb.{split}.txt").read_text(encoding="utf8").splitlines() if line.strip()]
    return {"ewt": ewt, "conll2003": conll, "ptb": ptb}


def write_input(folder: Path, sentences: Dict[str, List[str]], repeats: int) -> Dict[str, int]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    n_docs = n_words = 0
    for r in range(repeats):
        for name, lines in sentences.items():
            (folder / f"{r}_{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf8")
            n_docs += len(lines)
            n_words += sum(len(line.split()) for line in lines)
    return {"docs": n_docs, "whitespace_words": n_words}


def descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_and_watch(cmd: List[str], engine: str) -> Dict:
    """Run cmd; sample its process tree's peak memory while it runs."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: Dict[int, Dict] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in [process.pid] + descendants(process.pid):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    peaks[pid] = {"cmdline": cmdline, "parent_is_main": pid in _children_of(process.pid),
                                  "mb": max(peaks.get(pid, {}).get("mb", 0.0), peak_rss_mb(pid))}
                except OSError:
                    pass
            done.wait(1.0)  # scanning /proc costs CPU: not more often

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    if engine == "ray":
        workers = [p["mb"] for p in peaks.values() if "ray::" in p["cmdline"] and "MapWorker" in p["cmdline"]]
        workers = workers or [p["mb"] for p in peaks.values() if "ray::" in p["cmdline"]]
    elif "--n-process" in cmd:
        workers = [p["mb"] for pid, p in peaks.items() if p["parent_is_main"] and "python" in p["cmdline"]]
    else:
        workers = [peaks.get(process.pid, {}).get("mb", 0.0)]
    return {"seconds": seconds, "worker_peak_rss_mb": max(workers) if workers else None, "n_workers_seen": len(workers)}


def _children_of(pid: int) -> List[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine", "input": {"docs", "words"}, "runs": [{"pipeline",
    "engine", "docs_per_second", "words_per_second", "steady_docs_per_second", "startup_seconds",
    "seconds", "worker_peak_rss_mb"}]}. Speed ratios are against the pipeline's local 1-process run."""
    lines = [
        f"Machine: {data['machine']}. Input: {data['input']['docs']:,} sentences, {data['input']['words']:,} tokens.",
        "",
        "| pipeline | engine | docs/s | words/s | vs 1 process | docs/s after startup | startup | wall | peak memory per worker |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {run["pipeline"]: run["docs_per_second"] for run in data["runs"] if run["engine"] == RUNS[0][0]}
    for run in data["runs"]:
        rss = f"{run['worker_peak_rss_mb']:,.0f} MB" if run["worker_peak_rss_mb"] else "n/a"
        lines.append(
            f"| {run['pipeline']} | {run['engine']} | {run['docs_per_second']:,.0f} | {run['words_per_second']:,.0f} | "
            f"{run['docs_per_second'] / base[run['pipeline']]:.2f}x | {run['steady_docs_per_second']:,.0f} | "
            f"{run['startup_seconds']:.1f} s | {run['seconds']:.0f} s | {rss} |"
        )
    return "\n".join(lines)


def main(
    tagger: Path = typer.Argument(..., help="Trained tagger pipeline"),
    ner: Path = typer.Argument(..., help="Trained NER pipeline"),
    output: Path = typer.Argument(..., help="JSON results"),
    work_dir: Path = typer.Option(Path("training/benchmark_annotate"), help="Input and output files go here"),
    repeats: int = typer.Option(3, help="Times the corpora are repeated in the input"),
    data: Path = typer.Option(DATA, help="../shared/data"),
    runs: str = typer.Option(",".join(name for name, _ in DEFAULT_RUNS), help=f"Comma-separated run names: {', '.join(name for name, _ in RUNS)}"),
    limit: int = typer.Option(0, help="First N sentences of each corpus only (smoke runs)"),
    pipelines: str = typer.Option("tagger,ner", help="Which of the two pipelines to run"),
):
    sentences = corpus_sentences(data)
    if limit:
        sentences = {name: lines[:limit] for name, lines in sentences.items()}
    size = write_input(work_dir / "input", sentences, repeats)
    tiny = work_dir / "tiny"
    tiny.mkdir(parents=True, exist_ok=True)
    (tiny / "one.txt").write_text("One short sentence .\n", encoding="utf8")
    wanted = runs.split(",")
    results = []
    n_words = None
    for pipeline_name, model in (("tagger", tagger), ("ner", ner)):
        if pipeline_name not in pipelines.split(","):
            continue
        for run_name, extra in RUNS:
            if run_name not in wanted:
                continue
            engine = extra[1]
            base = [sys.executable, "-m", "spacy_rnn", "annotate", str(model)]
            options = ["--no-progress"] + extra + ([] if "--format" in extra else ["--format", "spacy"])
            out = work_dir / "out"
            shutil.rmtree(out, ignore_errors=True)
            startup = run_and_watch(base + [str(tiny), str(work_dir / "out_tiny")] + options, engine)["seconds"]
            shutil.rmtree(work_dir / "out_tiny", ignore_errors=True)
            measured = run_and_watch(base + [str(work_dir / "input"), str(out)] + options, engine)
            summary = json.loads((out / "summary.json").read_text())
            assert summary["inputs"] == summary["outputs"] + summary["rejects"] == size["docs"], summary
            if n_words is None and "jsonl" not in extra:  # counted from the first DocBin output
                n_words = count_tokens(out)
            row = {
                "pipeline": pipeline_name,
                "model": str(model),
                "engine": run_name,
                "seconds": measured["seconds"],
                "startup_seconds": startup,
                "docs_per_second": size["docs"] / measured["seconds"],
                "words_per_second": n_words / measured["seconds"],
                "steady_docs_per_second": size["docs"] / max(measured["seconds"] - startup, 1e-9),
                "worker_peak_rss_mb": measured["worker_peak_rss_mb"],
                "rejects": summary["rejects"],
                "format": "jsonl" if "jsonl" in extra else "spacy",
            }
            results.append(row)
            print(f"{pipeline_name} / {run_name}: {row['docs_per_second']:,.0f} docs/s, {row['seconds']:.0f} s", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    report(output, {"machine": machine_description(), "input": {"docs": size["docs"], "words": n_words, "repeats": repeats},
                    "runs": results}, render_markdown)


def count_tokens(out: Path) -> int:
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("en").vocab
    return sum(sum(len(doc) for doc in DocBin().from_disk(path).get_docs(vocab)) for path in sorted((out / "shards").glob("*.spacy")))


if __name__ == "__main__":
    typer.run(main)
