"""Train (or reuse) rnn_ner variants and spaCy's own ner on CoNLL-2003 and on
Universal NER English-EWT, then measure them all in one process: entity
precision/recall/F1 (overall and per type), words and entities per second
through nlp.pipe (each dataset's pipelines timed in interleaved rounds, their
speed ratio to the dataset's LSTM row paired round by round), and training
wall time.

    python scripts/benchmark_ner.py corpus training/benchmark_ner metrics/benchmark_ner.json

Expects corpus/conll2003/{train,valid}.spacy and corpus/uner/en_ewt-ud-{train.draft-2022-12,dev,test}.spacy
(made by scripts/convert_ner.py). Models are selected on the dev/valid sets by `spacy train`.
"""
import statistics
from pathlib import Path
from typing import Dict, List

import typer
from spacy.scorer import get_ner_prf
from spacy.training import Example

from benchmark_tagger import (System, bare_docs, ensure_trained, gold_sentences, in_system_order, kept_rows,
                              load_trained, machine_description, paired_ratio, ratio_in_run, report, run_label, steps,
                              train_seconds, words_per_second)

CRF_GRU = {"components.ner.model.encoder.cell": "gru"}
SOFTMAX = {"components.ner.decoder": "softmax"}
# The tagger configs' regularized schedule (more dropout, 9000 steps), tried for NER (issue 10, item 9).
REGULARIZED = {
    "components.ner.model.encoder.dropout": "0.33", "components.ner.model.encoder.word_dropout": "0.1",
    **steps(9000),
}

MINGRU = {"components.ner.model.encoder.cell": "mingru", "components.ner.model.encoder.output_gate": "true"}
# With the tagger's later choices (configs/tagger_mingru.cfg): the short convolution and 128 character filters.
MINGRU_CONV = {**MINGRU, "components.ner.model.encoder.short_conv": "true", "components.ner.model.encoder.char_filters": "128"}

BASELINE = "rnn_ner_crf_lstm"

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
    # The minGRU as the tagger ships it (configs/tagger_mingru.cfg: output gates), NER's own schedule (issue 14).
    ("conll2003", System("rnn_ner_crf_mingru", "configs/ner.cfg", overrides=MINGRU,
                         description="rnn_ner, mingru with output gates + CRF")),
    # A second training of each (seed 1; configs/ner.cfg: seed 0), for the spread of single trainings.
    ("conll2003", System("rnn_ner_crf_lstm_seed1", "configs/ner.cfg", overrides={"system.seed": "1"},
                         description="rnn_ner_crf_lstm trained with seed 1")),
    ("conll2003", System("rnn_ner_crf_mingru_seed1", "configs/ner.cfg", overrides={**MINGRU, "system.seed": "1"},
                         description="rnn_ner_crf_mingru trained with seed 1")),
    ("conll2003", System("rnn_ner_crf_mingru_conv", "configs/ner.cfg", overrides=MINGRU_CONV,
                         description="rnn_ner, mingru with output gates, short convolution, 128 character filters + CRF")),
    ("conll2003", System("rnn_ner_crf_mingru_conv_seed1", "configs/ner.cfg", overrides={**MINGRU_CONV, "system.seed": "1"},
                         description="rnn_ner_crf_mingru_conv trained with seed 1")),
    # rnn_ner_crf_mingru's trained pipeline loaded with int8 weights (spacy_rnn.load_int8), not trained itself.
    ("conll2003", System("rnn_ner_crf_mingru_int8", "configs/ner.cfg", int8_of="rnn_ner_crf_mingru",
                         description="rnn_ner_crf_mingru with int8 weights")),
    ("conll2003", System("rnn_ner_crf_mingru_conv_int8", "configs/ner.cfg", int8_of="rnn_ner_crf_mingru_conv",
                         description="rnn_ner_crf_mingru_conv with int8 weights")),
    ("uner", System("spacy_ner", "configs/baselines/spacy_ner.cfg", description="spaCy ner (efficiency)")),
    ("uner", System("rnn_ner_crf_lstm", "configs/ner.cfg", description="rnn_ner, lstm + CRF")),
    ("uner", System("rnn_ner_crf_mingru", "configs/ner.cfg", overrides=MINGRU, description="rnn_ner, mingru with output gates + CRF")),
]


def score(nlp, references) -> Dict:
    """Entity P/R/F (overall and per type) of nlp on the references, and how many words and
    predicted entities they hold (entities/s is words/s times the share of entities)."""
    predicted = list(nlp.pipe(bare_docs(nlp, references), batch_size=1000))
    examples = [Example(pred, ref) for pred, ref in zip(predicted, references)]
    scores = get_ner_prf(examples)
    return {
        **{k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")},
        "n_words": sum(len(ref) for ref in references),
        "n_predicted_ents": sum(len(doc.ents) for doc in predicted),
    }


def baseline_of(name: str) -> str:
    """Each dataset's speeds are ratios to its LSTM + CRF row of the same run."""
    return f"{name.split('/', 1)[0]}/{BASELINE}"


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "systems": {"dataset/system":
    {"dataset", "description", SET: {"ents_p", "ents_r", "ents_f", "ents_per_type": {TYPE: {"f"}}}
    for each scored set, "words_per_second", "entities_per_second", "train_seconds", "speed_ratio",
    "run"}}}: one line per system and scored set (the values holding "ents_f", in the file's order).
    "speed_ratio" is the median over interleaved rounds of the row's speed over its dataset's LSTM
    row's in the same round; "run" is the date of the run that measured a row (rows kept with
    --keep carry theirs; files written before rows carried these are one run, their ratio the
    ratio of the two speeds)."""
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| dataset | system | set | P | R | F1 | PER F1 | LOC F1 | ORG F1 | MISC F1 | words/s | entities/s | speed vs LSTM (same run) | train time | run |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in data["systems"].items():
        speed_ratio = ratio_in_run(name, row, data["systems"], baseline_of)
        shown_ratio = f"{speed_ratio:.2f}x" if speed_ratio else "–"
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
                + f" | {row['words_per_second']:,.0f} | {row['entities_per_second']:,.0f} | {shown_ratio} "
                f"| {row['train_seconds'] / 60:.1f} min "
                f"| {row.get('run', data.get('run', 'one run'))} |"
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
    keep: bool = typer.Option(False, help="Keep the output file's rows of the systems not measured now "
                              "(their trained pipelines need not be here); speeds compare only within a run"),
):
    wanted = set(systems.split(",")) if systems else None
    unknown = sorted((wanted or set()) - {f"{d}/{s.name}" for d, s in SYSTEMS})
    if unknown:
        raise typer.BadParameter(f"unknown system(s) {', '.join(unknown)}; choose from "
                                 + ", ".join(f"{d}/{s.name}" for d, s in SYSTEMS))
    chosen = [(d, s) for d, s in SYSTEMS if wanted is None or f"{d}/{s.name}" in wanted]
    extra = ["--training.max_steps", str(max_steps)] if max_steps else []
    by_name = {(d, s.name): s for d, s in SYSTEMS}
    # An int8 row needs its float system trained, chosen or not.
    to_train = {(d, s.int8_of or s.name): by_name[d, s.int8_of or s.name] for d, s in chosen}
    for (dataset, _), system in to_train.items():
        out_dir = training_dir / dataset / system.name
        paths = DATASETS[dataset]
        ensure_trained(system, corpus / paths["train"], corpus / paths["dev"], out_dir, extra, retrain)
    if train_only:
        return
    results: Dict[str, Dict] = {}
    run = run_label()
    pipelines: Dict[str, Dict[str, object]] = {dataset: {} for dataset in DATASETS}
    speed_sets: Dict[str, List] = {}  # each dataset's last scored set, on which its speeds are measured
    for dataset, system in chosen:
        out_dir, nlp = load_trained(system, training_dir / dataset)
        row = {"dataset": dataset, "description": system.description}
        for split, path in DATASETS[dataset]["eval"].items():
            speed_sets[dataset] = gold_sentences(nlp, corpus / path, 0)
            row[split] = score(nlp, speed_sets[dataset])
        row["speed_set"] = split
        row["train_seconds"] = train_seconds(out_dir)
        row["run"] = run
        results[f"{dataset}/{system.name}"] = row
        pipelines[dataset][f"{dataset}/{system.name}"] = nlp
        print(f"measured the scores of {dataset}/{system.name}", flush=True)
    # Speeds last, each dataset's pipelines in the same interleaved rounds (paired ratios).
    for dataset, by_name in pipelines.items():
        if not by_name:
            continue
        speeds = words_per_second(by_name, speed_sets[dataset])
        for name, rounds in speeds.items():
            row = results[name]
            s = row[row["speed_set"]]
            row["words_per_second"] = statistics.median(rounds)
            row["words_per_second_rounds"] = rounds
            row["entities_per_second"] = row["words_per_second"] * s["n_predicted_ents"] / s["n_words"]
            row["speed_ratio"] = paired_ratio(rounds, speeds.get(baseline_of(name)))
    if keep:
        results = in_system_order({**kept_rows(output, list(results), baseline_of), **results},
                                  [f"{d}/{s.name}" for d, s in SYSTEMS])
    report(output, {"machine": machine_description(), "run": run, "systems": results}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
