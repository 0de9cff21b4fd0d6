"""Train (or reuse) the shared-encoder RNN pipeline (tagger, morphologizer and
parser listening to one spacy_rnn.RNNEncoder.v2) and spaCy's own pipelines
with the same components on UD English-EWT, then measure them all in one
process on dev and test with spaCy's scorer (nlp.evaluate on gold-tokenized
examples): UAS, LAS, XPOS tag accuracy, UPOS accuracy, morphological feature
accuracy and sentence-boundary F; speed through nlp.pipe (all pipelines in turn, round after
round: medians, and ratios to spaCy's efficiency CNN round by round); training wall time.

    python scripts/benchmark_parser.py corpus training/benchmark_parser metrics/benchmark_parser.json

With --systems a,b --keep, the rows of the other systems stay as an earlier run measured them
(each with its run's label and speed ratio), for when their trained pipelines are not at hand.

Models are selected on dev by `spacy train` (model-best); test is only read here.
Smoke run: --max-steps 10 --limit 50 --systems rnn_shared,spacy_cnn_efficiency.
"""
import statistics
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.training import Corpus, Example

from benchmark_tagger import (System, ensure_trained, in_system_order, kept_rows, machine_description, paired_ratio,
                              ratio_in_run, report, run_label, steps, train_seconds, words_per_second)

# The shipped config's parser is spaCy's default size (hidden width 64, two maxout pieces): about
# half the time a step of width 128 with three pieces, which bought 9,000 steps instead of 6,500.
# Its encoder is a 2 x 256 bidirectional minGRU: among the candidates below (trained two at a time,
# one thread each), the one with the best dev LAS that trains in under 45 minutes.


def encoder(**settings) -> Dict[str, str]:
    """Overrides of the shared encoder's settings ([components.tok2vec.model])."""
    return {f"components.tok2vec.model.{name}": str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in settings.items()}


LSTM = encoder(cell="lstm", output_gate=False)

SYSTEMS = [
    System("rnn_shared", "configs/parser_tagger_rnn.cfg",
           description="tagger + morphologizer + parser on one spacy_rnn.RNNEncoder.v2 (2x256 bidirectional minGRU), as shipped"),
    System("rnn_shared_w384", "configs/parser_tagger_rnn.cfg", overrides=encoder(width=384),
           description="as shipped with a 2x384 minGRU encoder (candidate)"),
    System("rnn_shared_10k5", "configs/parser_tagger_rnn.cfg", overrides=steps(10500),
           description="as shipped, 10500 steps (candidate)"),
    System("rnn_shared_w192", "configs/parser_tagger_rnn.cfg", overrides=encoder(width=192),
           description="as shipped with a 2x192 minGRU encoder (candidate)"),
    System("rnn_shared_w128", "configs/parser_tagger_rnn.cfg", overrides=encoder(width=128),
           description="as shipped with a 2x128 minGRU encoder (shipped before)"),
    System("rnn_shared_11k", "configs/parser_tagger_rnn.cfg",
           overrides={**encoder(width=128), **steps(11000)},
           description="as rnn_shared_w128, 11000 steps (candidate)"),
    System("rnn_shared_d3", "configs/parser_tagger_rnn.cfg", overrides=encoder(width=192, depth=3),
           description="rnn_shared_w192 with 3 layers (candidate)"),
    System("rnn_shared_lstm", "configs/parser_tagger_rnn.cfg", overrides={**LSTM, **encoder(width=128)},
           description="rnn_shared_w128 with a 2x128 BiLSTM encoder (candidate)"),
    System("rnn_shared_lstm_8k", "configs/parser_tagger_rnn.cfg",
           overrides={**LSTM, **encoder(width=128), **steps(8000), "training.eval_frequency": "1000"},
           description="as rnn_shared_lstm, 8000 steps, evaluated every 1000 (candidate)"),
    System("rnn_shared_lstm_w192", "configs/parser_tagger_rnn.cfg",
           overrides={**LSTM, **encoder(width=192), **steps(6500)},
           description="as rnn_shared_lstm with a 2x192 BiLSTM, 6500 steps (candidate)"),
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
    "max_steps", "speed_ratio", "run"}}} with SCORE in dep_uas, dep_las, tag_acc, pos_acc,
    morph_acc, sents_f: one line per system and scored set. A row's speed ratio is against the
    spacy_cnn_efficiency row of its own run ("run": the run's date; rows kept from an earlier run
    with --keep say so); files written before rows carried these are rendered as one run."""
    results = data["systems"]
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| system | set | UAS | LAS | tag acc (XPOS) | POS acc (UPOS) | morph acc | sents F | "
        f"words/s (nlp.pipe, test) | speed vs {BASELINE} (same run) | max steps | train time | run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in results.items():
        speed_ratio = ratio_in_run(name, row, results, baseline_of)
        shown_ratio = f"{speed_ratio:.2f}x" if speed_ratio else "n/a"
        steps = f"{row['max_steps']:,}" if row.get("max_steps") else "–"
        for split in ("dev", "test"):
            if split not in row:
                continue
            s = row[split]
            lines.append(
                f"| {name} ({row['description']}) | {split} | "
                + " | ".join(percent(s.get(key)) for key in SCORES)
                + f" | {row['words_per_second']:,.0f} | {shown_ratio} | {steps} | {row['train_seconds'] / 60:.1f} min"
                + f" | {row.get('run', data.get('run', 'one run'))} |"
            )
    return "\n".join(lines)


def baseline_of(name: str) -> str:
    """Every row's speed ratio is against the same baseline row."""
    return BASELINE


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-{train,dev,test}.spacy"),
    training_dir: Path = typer.Argument(..., help="Where trained pipelines are (or go)"),
    output: Path = typer.Argument(..., help="JSON file for the results"),
    systems: str = typer.Option(",".join(s.name for s in SYSTEMS), help="Comma-separated system names"),
    retrain: bool = typer.Option(False, help="Retrain even if a trained pipeline exists"),
    limit: int = typer.Option(0, help="Evaluate on the first N dev and test sentences only (smoke runs)"),
    max_steps: int = typer.Option(0, help="Override [training] max_steps (smoke runs)"),
    train_only: bool = typer.Option(False, help="Train what is missing, measure nothing"),
    keep: bool = typer.Option(False, help="Keep the output file's rows of the systems not measured now "
                              "(their trained pipelines need not be here); each row's speed ratio stays "
                              "against the baseline of its own run"),
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
    run = run_label()
    results, pipelines, test_references = {}, {}, None
    for system in chosen:
        out_dir = training_dir / system.name
        nlp = spacy.load(out_dir / "model-best")
        row = {"description": system.description}
        row["dev"] = evaluate(nlp, gold_examples(nlp, corpus / "en_ewt-ud-dev.spacy", limit))
        test = gold_examples(nlp, corpus / "en_ewt-ud-test.spacy", limit)
        row["test"] = evaluate(nlp, test)
        test_references = test_references or [eg.reference for eg in test]
        row["train_seconds"] = train_seconds(out_dir)
        # The trained pipeline's config holds the max_steps it was trained with (overrides included).
        row["max_steps"] = nlp.config["training"]["max_steps"]
        row["run"] = run
        results[system.name], pipelines[system.name] = row, nlp
        print(f"scored {system.name}", flush=True)
    # Speeds: every pipeline in turn, round after round; the median over rounds, and ratios
    # against the baseline round by round (this machine's speed drifts within minutes).
    speeds = words_per_second(pipelines, test_references)
    for name, row in results.items():
        row["words_per_second"] = statistics.median(speeds[name])
        row["words_per_second_rounds"] = speeds[name]
        row["speed_ratio"] = paired_ratio(speeds[name], speeds.get(BASELINE))
    if keep:
        results = in_system_order({**kept_rows(output, list(results), baseline_of), **results}, [s.name for s in SYSTEMS])
    report(output, {"machine": machine_description(), "run": run, "systems": results}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
