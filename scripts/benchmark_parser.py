"""Train (or reuse) the shared-encoder RNN pipeline (tagger, morphologizer and
parser listening to one spacy_rnn.RNNEncoder.v2) and spaCy's own pipelines
with the same components on UD English-EWT, then measure them all in one
process on dev and test with spaCy's scorer (nlp.evaluate on gold-tokenized
examples): UAS, LAS, XPOS tag accuracy, UPOS accuracy, morphological feature
accuracy and sentence-boundary F; speed through nlp.pipe; training wall time.

    python scripts/benchmark_parser.py corpus training/benchmark_parser metrics/benchmark_parser.json

Models are selected on dev by `spacy train` (model-best); test is only read here.
Smoke run: --max-steps 10 --limit 50 --systems rnn_shared,spacy_cnn_efficiency.
"""
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.training import Corpus, Example

from benchmark_tagger import System, ensure_trained, machine_description, report, train_seconds, words_per_second

SYSTEMS = [
    System("rnn_shared", "configs/parser_tagger_rnn.cfg",
           description="tagger + morphologizer + parser on one spacy_rnn.RNNEncoder.v2 (2x128 BiLSTM)"),
    System("spacy_cnn_efficiency", "configs/baselines/spacy_parser_cnn_efficiency.cfg",
           description="spaCy, CNN tok2vec (-o efficiency)"),
    System("spacy_cnn_accuracy", "configs/baselines/spacy_parser_cnn_accuracy.cfg",
           description="spaCy, CNN tok2vec (-o accuracy, no vectors)"),
    System("spacy_bilstm", "configs/baselines/spacy_parser_bilstm.cfg",
           description="spaCy, TorchBiLSTMEncoder.v1 tok2vec"),
]
BASELINE = "spacy_cnn_efficiency"  # speed ratios are against this row

# spaCy's scorer keys reported (None when the pipeline does not predict the annotation).
SCORES = ("dep_uas", "dep_las", "tag_acc", "pos_acc", "morph_acc", "sents_f")


def gold_examples(nlp, path: Path, limit: int) -> List[Example]:
    """One example per gold sentence, with the gold tokenization and an unannotated predicted doc
    (spacy evaluate --gold-preproc reads the corpus the same way)."""
    examples = list(Corpus(path, gold_preproc=True, limit=0)(nlp))
    return examples[:limit] if limit else examples


def evaluate(nlp, examples: List[Example]) -> Dict:
    """spaCy's scores of the pipeline on the examples (nlp.evaluate)."""
    scores = nlp.evaluate(examples, batch_size=1000)
    row: Dict[str, Optional[float]] = {key: scores.get(key) for key in SCORES}
    row["n_sentences"] = len(examples)
    row["n_tokens"] = sum(len(eg.reference) for eg in examples)
    return row


def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "systems": {name: {"description",
    "dev": {SCORE: float or null, ...}, "test": {...}, "words_per_second", "train_seconds",
    "max_steps"}}} with SCORE in dep_uas, dep_las, tag_acc, pos_acc, morph_acc, sents_f: one line
    per system and scored set. Speed ratios are against the spacy_cnn_efficiency row, if any."""
    results = data["systems"]
    baseline_wps = results.get(BASELINE, {}).get("words_per_second")
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| system | set | UAS | LAS | tag acc (XPOS) | POS acc (UPOS) | morph acc | sents F | "
        f"words/s (nlp.pipe, test) | speed vs {BASELINE} | max steps | train time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        ratio = f"{row['words_per_second'] / baseline_wps:.2f}x" if baseline_wps else "n/a"
        steps = f"{row['max_steps']:,}" if row.get("max_steps") else "–"
        for split in ("dev", "test"):
            if split not in row:
                continue
            s = row[split]
            lines.append(
                f"| {name} ({row['description']}) | {split} | "
                + " | ".join(percent(s.get(key)) for key in SCORES)
                + f" | {row['words_per_second']:,.0f} | {ratio} | {steps} | {row['train_seconds'] / 60:.1f} min |"
            )
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-{train,dev,test}.spacy"),
    training_dir: Path = typer.Argument(..., help="Where trained pipelines are (or go)"),
    output: Path = typer.Argument(..., help="JSON file for the results"),
    systems: str = typer.Option(",".join(s.name for s in SYSTEMS), help="Comma-separated system names"),
    retrain: bool = typer.Option(False, help="Retrain even if a trained pipeline exists"),
    limit: int = typer.Option(0, help="Evaluate on the first N dev and test sentences only (smoke runs)"),
    max_steps: int = typer.Option(0, help="Override [training] max_steps (smoke runs)"),
    train_only: bool = typer.Option(False, help="Train what is missing, measure nothing"),
):
    wanted = systems.split(",")
    unknown = sorted(set(wanted) - {s.name for s in SYSTEMS})
    if unknown:
        raise typer.BadParameter(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(s.name for s in SYSTEMS)}")
    chosen = [s for s in SYSTEMS if s.name in wanted]
    extra = ["--training.max_steps", str(max_steps)] if max_steps else []
    for system in chosen:
        out_dir = training_dir / system.name
        ensure_trained(system, corpus / "en_ewt-ud-train.spacy", corpus / "en_ewt-ud-dev.spacy", out_dir, extra, retrain)
    if train_only:
        return
    # All measurements happen here, in one process, after all training is done.
    results = {}
    for system in chosen:
        out_dir = training_dir / system.name
        nlp = spacy.load(out_dir / "model-best")
        row = {"description": system.description}
        row["dev"] = evaluate(nlp, gold_examples(nlp, corpus / "en_ewt-ud-dev.spacy", limit))
        test = gold_examples(nlp, corpus / "en_ewt-ud-test.spacy", limit)
        row["test"] = evaluate(nlp, test)
        row["words_per_second"] = words_per_second(nlp, [eg.reference for eg in test])
        row["train_seconds"] = train_seconds(out_dir)
        # The trained pipeline's config holds the max_steps it was trained with (overrides included).
        row["max_steps"] = nlp.config["training"]["max_steps"]
        results[system.name] = row
        print(f"measured {system.name}", flush=True)
    report(output, {"machine": machine_description(), "systems": results}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
