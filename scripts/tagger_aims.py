"""Tally the speed and accuracy aims of linear-recurrence tagger configs (issue 14) over runs of
scripts/benchmark_tagger.py, from their results files.

    python scripts/tagger_aims.py metrics/tagger_aims.json metrics/benchmark_tagger_fast_bf16.json \\
        metrics/benchmark_tagger_fast_bf16_run2.json --configs rnn_mingru_fast_bf16

A config is a row of the results files, NAME, with its trainings with other seeds (NAME_seedN)
and their int8 rows (NAME_int8, NAME_seedN_int8) beside it. In each file that holds a config's
rows and the baselines, rnn_lstm (with its seed rows) and spacy_cnn, each aim is measured as the
tagger table measures it (speed ratios: medians of per-round ratios within the run):

- train: each float row's training words/s against rnn_lstm's, at least 2x;
- tag: each float row's tagging words/s against rnn_lstm's, at least 1.5x;
- accuracy: the config's mean dev accuracy over its trainings, at most 0.2 points below the
  LSTM's (mean over rnn_lstm and its seed rows);
- int8 speed: each int8 row's words/s against its float row's, at least 1.5x;
- int8 accuracy: the mean dev accuracy of the int8 rows, at most 0.1 points below the float rows';
- int8 vs CNN: each int8 row's words/s against spacy_cnn's, at least 3x.

Each measurement counts once: a run of three trainings gives three train measurements and one
accuracy measurement, and runs of the same pipelines (which score the same) one accuracy
measurement between them. The results file keeps every measurement; scripts/render_readme.py renders
its table into README.md.
"""
import json
import math
import statistics
from pathlib import Path
from typing import Callable, Dict, List, Optional

import typer

from benchmark_tagger import report, seed_groups, speed_ratio_value

LSTM, CNN = "rnn_lstm", "spacy_cnn"


def mean_dev(rows: Dict[str, Dict], names: List[str]) -> float:
    """The mean dev token accuracy of the rows `names`, in points."""
    return 100 * statistics.mean(rows[name]["dev"]["token_acc"] for name in names)


# aim: (what is measured, threshold, whether a value meets it, how a value prints)
AIMS: Dict[str, tuple] = {
    "train": ("training words/s vs the LSTM's", "≥ 2x", lambda v: v >= 2.0, "{:.2f}x"),
    "tag": ("tagging words/s vs the LSTM's", "≥ 1.5x", lambda v: v >= 1.5, "{:.2f}x"),
    "accuracy": ("mean dev accuracy minus the LSTM's", "≥ -0.2", lambda v: v >= -0.2 - 1e-9, "{:+.2f}"),
    "int8_speed": ("int8 words/s vs its float row's", "≥ 1.5x", lambda v: v >= 1.5, "{:.2f}x"),
    "int8_accuracy": ("int8 mean dev accuracy minus the float rows'", "≥ -0.1", lambda v: v >= -0.1 - 1e-9, "{:+.2f}"),
    "int8_vs_cnn": ("int8 words/s vs spaCy's CNN's", "≥ 3x", lambda v: v >= 3.0, "{:.2f}x"),
}


ACCURACY_AIMS = ("accuracy", "int8_accuracy")


def measure_run(rows: Dict[str, Dict], config: str) -> Optional[Dict[str, List[float]]]:
    """The measurements of each aim for `config` in one results file's rows; None if the file
    lacks the config, its int8 rows, rnn_lstm or spacy_cnn."""
    groups = seed_groups(rows)

    def trainings(name: str) -> List[str]:
        """The row and its seed rows (none if the file lacks the row)."""
        return groups.get(name, [name] if name in rows else [])

    floats, int8s, lstms = trainings(config), trainings(f"{config}_int8"), trainings(LSTM)
    if not floats or not int8s or not lstms or CNN not in rows:
        return None
    lstm, cnn = rows[LSTM], rows[CNN]

    def ratios(names: List[str], base: Callable[[str], Dict], key: str) -> List[float]:
        return [speed_ratio_value(rows[name], base(name), key) for name in names]

    return {
        "train": ratios(floats, lambda _: lstm, "train_words_per_second"),
        "tag": ratios(floats, lambda _: lstm, "words_per_second"),
        "accuracy": [mean_dev(rows, floats) - mean_dev(rows, lstms)],
        "int8_speed": ratios(int8s, lambda name: rows[rows[name]["int8_of"]], "words_per_second"),
        "int8_accuracy": [mean_dev(rows, int8s) - mean_dev(rows, [rows[name]["int8_of"] for name in int8s])],
        "int8_vs_cnn": ratios(int8s, lambda _: cnn, "words_per_second"),
    }


def tally(files: Dict[str, Dict], configs: List[str]) -> Dict:
    """{"configs": {config: {"description", "runs": [file, ...], "aims": {aim: [value, ...]}}}} over
    the files (name -> results data) that hold each config; the description is its row's in the
    last of them."""
    result = {}
    for config in configs:
        runs, aims, description = [], {aim: [] for aim in AIMS}, ""
        for name, data in files.items():
            measured = measure_run(data["systems"], config)
            if measured is None:
                continue
            runs.append(name)
            description = data["systems"][config].get("description", "")
            for aim, values in measured.items():
                if aim in ACCURACY_AIMS:  # the same pipelines score the same in every run: count them once
                    values = [v for v in values if not any(math.isclose(v, seen, abs_tol=1e-9) for seen in aims[aim])]
                aims[aim] += values
        if not runs:
            raise ValueError(f"no results file has {config}, {config}_int8, {LSTM} and {CNN}: {', '.join(files)}")
        result[config] = {"description": description, "runs": runs, "aims": aims}
    return {"configs": result}


def render_markdown(data: Dict) -> str:
    """For each config, one line per aim: its threshold, the range of its measurements and how
    many meet it."""
    lines = []
    for config, entry in data["configs"].items():
        about = f" ({entry['description']})" if entry.get("description") else ""
        lines += [f"`{config}`{about}, {len(entry['runs'])} run{'s' if len(entry['runs']) != 1 else ''} ({', '.join(entry['runs'])}):", "",
                  "| aim | measured | threshold | range | met |", "|---|---|---|---:|---:|"]
        for aim, (what, threshold, meets, fmt) in AIMS.items():
            values = entry["aims"][aim]
            low, high = fmt.format(min(values)), fmt.format(max(values))
            span = low if low == high else f"{low} to {high}"
            lines.append(f"| {aim} | {what} | {threshold} | {span} | {sum(map(meets, values))} of {len(values)} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def main(
    output: Path = typer.Argument(..., help="JSON file for the tally"),
    results: List[Path] = typer.Argument(..., help="Results files of scripts/benchmark_tagger.py"),
    configs: str = typer.Option(..., help="Comma-separated config rows (NAME, with NAME_seedN and NAME_int8 rows)"),
):
    files = {path.name: json.loads(path.read_text(encoding="utf8")) for path in results}
    report(output, tally(files, configs.split(",")), render_markdown)


if __name__ == "__main__":
    typer.run(main)
