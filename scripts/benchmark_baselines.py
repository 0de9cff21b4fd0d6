"""Benchmark the count-based baselines (most_frequent_tagger, hmm_tagger with
order 1 and 2) on the WSJ sample (45 PTB tags) and on UD English-EWT (XPOS
into Token.tag_, UPOS into Token.pos_): token accuracy, sentence accuracy,
accuracy on words unseen in training, and words per second through nlp.pipe
on gold-tokenized test sentences. Each pipeline is built from its config in
configs/ and "trained" by `init_nlp`, which does all the counting.

    python scripts/convert_wsj_sample.py ../shared/data/ptb_wsj_sample corpus
    python scripts/benchmark_baselines.py corpus metrics/benchmark_baselines.json \
        --tagger-json metrics/benchmark_tagger.json

corpus/ must hold wsj_sample-{train,dev,test}.spacy and en_ewt-ud-{train,dev,test}.spacy.
With --tagger-json, the EWT rows of scripts/benchmark_tagger.py (rnn_tagger
and spaCy's taggers) are added to the same table. Settings were chosen on dev;
test is only read here.
"""
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy
import spacy
import typer
from spacy.training.initialize import init_nlp
from spacy.util import load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_tagger import accuracy, gold_sentences, report, words_per_second  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Dataset:
    name: str
    prefix: str
    attr: str


@dataclass
class System:
    name: str
    config: str
    overrides: Dict[str, object] = field(default_factory=dict)
    description: str = ""


DATASETS = [
    Dataset("wsj_sample", "wsj_sample", "tag"),
    Dataset("ewt_xpos", "en_ewt-ud", "tag"),
    Dataset("ewt_upos", "en_ewt-ud", "pos"),
]

SYSTEMS = [
    System(
        "most_frequent_plain",
        "configs/most_frequent_tagger.cfg",
        # No rare words counted, so every unseen word gets the overall most frequent tag.
        {"components.tagger.rare_max": 0},
        "most_frequent_tagger, unseen words -> most frequent tag",
    ),
    System("most_frequent", "configs/most_frequent_tagger.cfg", {}, "most_frequent_tagger, shape/suffix classes"),
    System("hmm_order1", "configs/hmm_tagger.cfg", {"components.tagger.order": 1}, "hmm_tagger, order 1 (bigram)"),
    System("hmm_order2", "configs/hmm_tagger.cfg", {"components.tagger.order": 2}, "hmm_tagger, order 2 (trigram)"),
]


def build(system: System, dataset: Dataset, corpus: Path):
    """Initialize (count) the pipeline; returns it and the seconds it took."""
    overrides = {
        "paths.train": str(corpus / f"{dataset.prefix}-train.spacy"),
        "paths.dev": str(corpus / f"{dataset.prefix}-dev.spacy"),
        "components.tagger.token_attr": dataset.attr,
        "training.score_weights.tag_acc": 1.0 if dataset.attr == "tag" else None,
        "training.score_weights.pos_acc": 1.0 if dataset.attr == "pos" else None,
        **system.overrides,
    }
    config = load_config(REPO / system.config, overrides=overrides, interpolate=False)
    start = time.perf_counter()
    nlp = init_nlp(config)
    return nlp, time.perf_counter() - start


def tagger_rows(path: Path) -> Dict[str, Dict]:
    """EWT rows from scripts/benchmark_tagger.py's JSON, keyed like ours."""
    results = json.loads(path.read_text())["systems"]
    rows = {}
    for name, row in results.items():
        dataset = "ewt_xpos" if row["attr"] == "tag" else "ewt_upos"
        rows[f"{dataset}/{name}"] = dict(row, dataset=dataset, system=name)
    return rows


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "systems": {"dataset/system":
    {"dataset", "system", "description", "attr", "dev": {"token_acc"}, "test": {"token_acc",
    "sentence_acc", "unseen_acc", "n_unseen"}, "words_per_second", "train_seconds"}}}, with rows
    grouped by dataset in DATASETS order (the copied benchmark_tagger.py rows included)."""
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| dataset | system | attr | dev acc | test acc | test sentence acc | test unseen-word acc (n) | words/s (nlp.pipe, test) | train time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = {d.name: i for i, d in enumerate(DATASETS)}
    for row in sorted(data["systems"].values(), key=lambda r: order.get(r["dataset"], len(order))):
        test = row["test"]
        lines.append(
            f"| {row['dataset']} | {row['system']} ({row['description']}) | {row['attr']} | "
            f"{100 * row['dev']['token_acc']:.2f} | {100 * test['token_acc']:.2f} | {100 * test['sentence_acc']:.2f} | "
            f"{100 * test['unseen_acc']:.2f} ({test['n_unseen']}) | {row['words_per_second']:,.0f} | "
            f"{row['train_seconds']:.1f} s |"
        )
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with wsj_sample-*.spacy and en_ewt-ud-*.spacy"),
    output: Path = typer.Argument(..., help="JSON file for the results"),
    tagger_json: Optional[Path] = typer.Option(None, help="benchmark_tagger.py results to add to the table"),
    datasets: str = typer.Option(",".join(d.name for d in DATASETS), help="Comma-separated dataset names"),
    systems: str = typer.Option(",".join(s.name for s in SYSTEMS), help="Comma-separated system names"),
    limit: int = typer.Option(0, help="Evaluate on the first N test sentences only (smoke runs)"),
):
    chosen_datasets = [d for d in DATASETS if d.name in datasets.split(",")]
    chosen_systems = [s for s in SYSTEMS if s.name in systems.split(",")]
    results: Dict[str, Dict] = {}
    for dataset in chosen_datasets:
        blank = spacy.blank("en")
        train_refs = gold_sentences(blank, corpus / f"{dataset.prefix}-train.spacy", 0)
        train_words = {token.text for ref in train_refs for token in ref}
        for system in chosen_systems:
            nlp, seconds = build(system, dataset, corpus)
            test = gold_sentences(nlp, corpus / f"{dataset.prefix}-test.spacy", limit)
            dev = gold_sentences(nlp, corpus / f"{dataset.prefix}-dev.spacy", limit)
            row = {"dataset": dataset.name, "system": system.name, "description": system.description, "attr": dataset.attr}
            row["test"] = accuracy(nlp, test, dataset.attr, train_words)
            row["dev"] = accuracy(nlp, dev, dataset.attr, train_words)
            row["words_per_second"] = statistics.median(words_per_second({system.name: nlp}, test)[system.name])
            row["train_seconds"] = seconds
            results[f"{dataset.name}/{system.name}"] = row
            print(f"measured {dataset.name}/{system.name}: test {100 * row['test']['token_acc']:.2f}", flush=True)
    if tagger_json is not None:
        results.update(tagger_rows(tagger_json))
    machine = (
        f"{platform.machine()}, {platform.processor() or 'cpu'}; "
        f"numpy {numpy.__version__}, spaCy {spacy.__version__}, Python {platform.python_version()}"
    )
    report(output, {"machine": machine, "systems": results}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
