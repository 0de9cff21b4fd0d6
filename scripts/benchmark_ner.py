"""Train (or reuse) rnn_ner variants and spaCy's own ner on CoNLL-2003 and on
Universal NER English-EWT, then measure them all in one process: entity
precision/recall/F1 (overall and per type), entities and words per second
through nlp.pipe, and training wall time.

    python scripts/benchmark_ner.py corpus training/benchmark_ner metrics/benchmark_ner.json

Expects corpus/conll2003/{train,valid}.spacy and corpus/uner/en_ewt-ud-{train.draft-2022-12,dev,test}.spacy
(made by scripts/convert_ner.py). Models are selected on the dev/valid sets by `spacy train`.
"""
import time
from pathlib import Path
from typing import Dict

import spacy
import typer
from spacy.scorer import get_ner_prf
from spacy.training import Example

from benchmark_tagger import (System, bare_docs, ensure_trained, gold_sentences, machine_description, report, steps,
                              train_seconds)

CRF_GRU = {"components.ner.model.encoder.cell": "gru"}
SOFTMAX = {"components.ner.decoder": "softmax"}
# The tagger configs' regularized schedule (more dropout, 9000 steps), tried for NER (issue 10, item 9).
REGULARIZED = {
    "components.ner.model.encoder.dropout": "0.33", "components.ner.model.encoder.word_dropout": "0.1",
    **steps(9000),
}

# (system, dataset) pairs; datasets name their train/dev files and the sets scored.
DATASETS = {
    "conll2003": {"train": "conll2003/train.spacy", "dev": "conll2003/valid.spacy", "eval": {"valid": "conll2003/valid.spacy"}},
    "uner": {
        "train": "uner/en_ewt-ud-train.draft-2022-12.spacy",
        "dev": "uner/en_ewt-ud-dev.spacy",
        "eval": {"dev": "uner/en_ewt-ud-dev.spacy", "test": "uner/en_ewt-ud-test.spacy"},
    },
}
SYSTEMS = [
    ("conll2003", System("spacy_ner", "configs/baselines/spacy_ner.cfg", description="spaCy ner (efficiency)")),
    ("conll2003", System("rnn_ner_crf_lstm", "configs/ner.cfg", description="rnn_ner, lstm + CRF")),
    ("conll2003", System("rnn_ner_softmax_lstm", "configs/ner.cfg", overrides=SOFTMAX, description="rnn_ner, lstm + softmax")),
    ("conll2003", System("rnn_ner_crf_gru", "configs/ner.cfg", overrides=CRF_GRU, description="rnn_ner, gru + CRF")),
    ("conll2003", System("rnn_ner_crf_lstm_reg", "configs/ner.cfg", overrides=REGULARIZED,
                         description="rnn_ner, lstm + CRF, dropout 0.33, word dropout 0.1, 9000 steps")),
    ("conll2003", System("rnn_ner_crf_mingru_reg", "configs/ner.cfg",
                         overrides={**REGULARIZED, "components.ner.model.encoder.cell": "mingru"},
                         description="rnn_ner, mingru + CRF, as rnn_ner_crf_lstm_reg")),
    ("uner", System("spacy_ner", "configs/baselines/spacy_ner.cfg", description="spaCy ner (efficiency)")),
    ("uner", System("rnn_ner_crf_lstm", "configs/ner.cfg", description="rnn_ner, lstm + CRF")),
]


def score(nlp, references) -> Dict:
    predicted = nlp.pipe(bare_docs(nlp, references), batch_size=1000)
    examples = [Example(pred, ref) for pred, ref in zip(predicted, references)]
    scores = get_ner_prf(examples)
    return {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")}


def speed(nlp, references, repeats: int = 3) -> Dict[str, float]:
    n_words = sum(len(ref) for ref in references)
    best, n_ents = float("inf"), 0
    list(nlp.pipe(bare_docs(nlp, references[:200]), batch_size=1000))
    for _ in range(repeats):
        docs = bare_docs(nlp, references)
        start = time.perf_counter()
        n_ents = sum(len(doc.ents) for doc in nlp.pipe(docs, batch_size=1000))
        best = min(best, time.perf_counter() - start)
    return {"words_per_second": n_words / best, "entities_per_second": n_ents / best}


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "systems": {"dataset/system":
    {"dataset", "description", SET: {"ents_p", "ents_r", "ents_f", "ents_per_type": {TYPE: {"f"}}}
    for each scored set, "words_per_second", "entities_per_second", "train_seconds"}}}: one line per
    system and scored set (the values holding "ents_f", in the file's order)."""
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| dataset | system | set | P | R | F1 | PER F1 | LOC F1 | ORG F1 | MISC F1 | words/s | entities/s | train time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in data["systems"].items():
        for split, s in row.items():
            if not (isinstance(s, dict) and "ents_f" in s):
                continue
            per_type = [
                f"{100 * s['ents_per_type'][t]['f']:.1f}" if t in s["ents_per_type"] else "–"
                for t in ("PER", "LOC", "ORG", "MISC")
            ]
            lines.append(
                f"| {row['dataset']} | {name.split('/', 1)[-1]} ({row['description']}) | {split} | "
                f"{100 * s['ents_p']:.2f} | {100 * s['ents_r']:.2f} | {100 * s['ents_f']:.2f} | "
                + " | ".join(per_type)
                + f" | {row['words_per_second']:,.0f} | {row['entities_per_second']:,.0f} | {row['train_seconds'] / 60:.1f} min |"
            )
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with conll2003/ and uner/ .spacy files"),
    training_dir: Path = typer.Argument(..., help="Where trained pipelines are (or go)"),
    output: Path = typer.Argument(..., help="JSON file for the results"),
    systems: str = typer.Option("", help="Comma-separated dataset/system names, e.g. conll2003/spacy_ner (default: all)"),
    retrain: bool = typer.Option(False, help="Retrain even if a trained pipeline exists"),
    max_steps: int = typer.Option(0, help="Override [training] max_steps (smoke runs)"),
    train_only: bool = typer.Option(False, help="Train what is missing, measure nothing"),
):
    wanted = set(systems.split(",")) if systems else None
    chosen = [(d, s) for d, s in SYSTEMS if wanted is None or f"{d}/{s.name}" in wanted]
    extra = ["--training.max_steps", str(max_steps)] if max_steps else []
    for dataset, system in chosen:
        out_dir = training_dir / dataset / system.name
        paths = DATASETS[dataset]
        ensure_trained(system, corpus / paths["train"], corpus / paths["dev"], out_dir, extra, retrain)
    if train_only:
        return
    results: Dict[str, Dict] = {}
    for dataset, system in chosen:
        out_dir = training_dir / dataset / system.name
        nlp = spacy.load(out_dir / "model-best")
        row = {"dataset": dataset, "description": system.description}
        for split, path in DATASETS[dataset]["eval"].items():
            references = gold_sentences(nlp, corpus / path, 0)
            row[split] = score(nlp, references)
        row.update(speed(nlp, references))
        row["train_seconds"] = train_seconds(out_dir)
        results[f"{dataset}/{system.name}"] = row
        print(f"measured {dataset}/{system.name}", flush=True)
    report(output, {"machine": machine_description(), "systems": results}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
