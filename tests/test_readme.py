"""README.md's result tables agree with the committed benchmark JSON files (scripts/render_readme.py)."""
import importlib.util
import json
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

_spec = importlib.util.spec_from_file_location("render_readme", REPO / "scripts" / "render_readme.py")
render_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_readme)


def test_readme_tables_match_their_results_files():
    # A marker naming a missing file raises RegionError, which fails this test with the file's name.
    diff = render_readme.readme_diff(README)
    assert diff == "", "README.md differs from its results files; run python scripts/render_readme.py\n" + diff


def test_marked_results_files_are_in_git():
    files = render_readme.marked_files(README.read_text(encoding="utf8"))
    if not files:
        return  # no marked regions: nothing can be uncommitted
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip(f"not a git checkout, cannot check that {files} are committed")
    run = subprocess.run(["git", "ls-files", "--error-unmatch", *files], cwd=README.parent, capture_output=True, text=True)
    assert run.returncode == 0, f"results files named in README.md are not in git: {run.stderr}"


TWO_REGIONS = """# Title

Intro.

<!-- results: metrics/a.json -->
old table of a
<!-- /results -->

Between.
<!-- results: metrics/b.json -->
<!-- /results -->
End.
"""


def fake_render(path: Path) -> str:
    return f"| {path.stem} |\n|---|\n| {json.loads(path.read_text())['n']} |\n"


def test_render_regions_replaces_each_region(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "a.json").write_text(json.dumps({"n": 11}))
    (tmp_path / "metrics" / "b.json").write_text(json.dumps({"n": 22}))
    rendered = render_readme.render_regions(TWO_REGIONS, tmp_path, render=fake_render)
    assert rendered == """# Title

Intro.

<!-- results: metrics/a.json -->

| a |
|---|
| 11 |

<!-- /results -->

Between.
<!-- results: metrics/b.json -->

| b |
|---|
| 22 |

<!-- /results -->
End.
"""
    assert render_readme.render_regions(rendered, tmp_path, render=fake_render) == rendered
    assert render_readme.marked_files(TWO_REGIONS) == ["metrics/a.json", "metrics/b.json"]


def test_missing_results_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "a.json").write_text(json.dumps({"n": 11}))
    with pytest.raises(render_readme.RegionError, match="metrics/b.json") as error:
        render_readme.render_regions(TWO_REGIONS, tmp_path, render=fake_render)
    assert "metrics/a.json" not in str(error.value)


@pytest.mark.parametrize("text,message", [
    ("<!-- results: a.json -->\ntable\n", "no <!-- /results -->"),
    ("table\n<!-- /results -->\n", "without an opening"),
    ("<!-- results: a.json -->\n<!-- results: b.json -->\n<!-- /results -->\n", "inside the region of a.json"),
])
def test_unpaired_markers_are_errors(tmp_path, text, message):
    with pytest.raises(render_readme.RegionError, match=message):
        render_readme.render_regions(text, tmp_path, render=fake_render)


def test_unknown_results_file_name_is_an_error(tmp_path):
    (tmp_path / "tagger.json").write_text("{}")
    with pytest.raises(render_readme.RegionError, match="tagger.json: no renderer"):
        render_readme.render_file(tmp_path / "tagger.json")


def test_check_reports_and_the_command_rewrites(tmp_path, capsys):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "benchmark_threads.json").write_text(json.dumps(THREADS))
    readme = tmp_path / "README.md"
    readme.write_text("Intro.\n<!-- results: metrics/benchmark_threads.json -->\nstale\n<!-- /results -->\nEnd.\n")
    assert render_readme.main(["--check", "--readme", str(readme)]) == 1
    assert "-stale" in capsys.readouterr().out
    assert "stale" in readme.read_text()
    assert render_readme.main(["--readme", str(readme)]) == 0
    assert "stale" not in readme.read_text() and "| 1,234 |" in readme.read_text()
    assert render_readme.main(["--check", "--readme", str(readme)]) == 0
    (tmp_path / "metrics" / "benchmark_threads.json").unlink()
    assert render_readme.main(["--check", "--readme", str(readme)]) == 2
    assert "metrics/benchmark_threads.json" in capsys.readouterr().err


# Results files as the scripts write them (trimmed), with a stale "table" that must not be used.
ACCURACY = {"token_acc": 0.9485, "sentence_acc": 0.6355, "unseen_acc": 0.7814, "n_tokens": 25094, "n_sentences": 2077, "n_unseen": 2292}
TAGGER = {
    "machine": "x86_64, 2 torch threads, cpu",
    "systems": {
        "spacy_cnn": {"description": "spaCy tagger", "attr": "tag", "dev": dict(ACCURACY, token_acc=0.9394),
                      "test": dict(ACCURACY, token_acc=0.9425), "words_per_second": 20000.0, "train_seconds": 1110.0},
        "rnn_lstm": {"description": "rnn_tagger, cell=lstm", "attr": "tag", "dev": dict(ACCURACY, token_acc=0.9447),
                     "test": ACCURACY, "words_per_second": 56423.2, "train_seconds": 858.0,
                     "train_words_per_second": 1000.0},
        "rnn_mingru": {"description": "rnn_tagger, cell=mingru", "attr": "tag", "dev": ACCURACY, "test": ACCURACY,
                       "words_per_second": 112846.4, "train_seconds": 429.0, "train_words_per_second": 2500.0,
                       "matmul_share": 0.414},
        "rnn_mingru_int8": {"description": "int8", "attr": "tag", "dev": ACCURACY, "test": ACCURACY, "int8_of": "rnn_mingru",
                            "words_per_second": 225692.8, "train_seconds": 429.0, "train_words_per_second": None},
    },
    "table": "STALE",
}
BASELINES = {
    "machine": "x86_64, cpu; numpy 2.4.6",
    "systems": {
        "ewt_upos/rnn_lstm_upos": {"dataset": "ewt_upos", "system": "rnn_lstm_upos", "description": "rnn_tagger, UPOS",
                                   "attr": "pos", "dev": ACCURACY, "test": dict(ACCURACY, token_acc=0.9546),
                                   "words_per_second": 57028.0, "train_seconds": 1012.8},
        "wsj_sample/hmm_order2": {"dataset": "wsj_sample", "system": "hmm_order2", "description": "hmm_tagger, order 2",
                                  "attr": "tag", "dev": ACCURACY, "test": dict(ACCURACY, token_acc=0.9495, n_unseen=643),
                                  "words_per_second": 42653.0, "train_seconds": 3.4},
    },
    "table": "STALE",
}
PRF = {"ents_p": 0.9105, "ents_r": 0.9079, "ents_f": 0.9092,
       "ents_per_type": {t: {"p": 0.9, "r": 0.9, "f": f} for t, f in (("PER", 0.926), ("LOC", 0.935), ("ORG", 0.872), ("MISC", 0.876))}}
NER = {
    "machine": "x86_64, 2 torch threads, cpu",
    "systems": {
        "conll2003/rnn_ner_crf_lstm": {"dataset": "conll2003", "description": "rnn_ner, lstm + CRF", "valid": PRF,
                                       "words_per_second": 51742.0, "entities_per_second": 5969.0, "train_seconds": 1110.0},
        "uner/rnn_ner_crf_lstm": {"dataset": "uner", "description": "rnn_ner, lstm + CRF",
                                  "dev": dict(PRF, ents_f=0.655), "test": dict(PRF, ents_f=0.6821),
                                  "words_per_second": 53516.0, "entities_per_second": 2000.0, "train_seconds": 1128.0},
    },
    "table": "STALE",
}
RECIPE = {"cell": "lstm", "lr": 20.0, "tie_weights": False}
LM = {
    "command": "scripts/benchmark_lm.py", "shared_recipe": RECIPE, "lanes": 2, "threads_per_lane": 1,
    "max_minutes": 30.0, "limit_tokens": None, "total_wall_seconds": 5000.0,
    "machine": {"cpus": 2, "torch": "2.13.0+cpu", "platform": "Linux"},
    "results": [
        {"system": "lstm", "cell": "lstm", "epochs": 6.0, "train_tokens": 929589, "tokens_per_second": 4219.4,
         "train_wall_seconds": 1362.0, "eval_wall_seconds": 60.0, "torch_threads": 1, "config": RECIPE,
         "history": [{"epoch": 1, "valid_perplexity": 188.4}, {"epoch": 2, "valid_perplexity": 148.2}],
         "ptb_valid_ppl": 116.93, "ptb_valid_oov": 0.0, "ptb_test_ppl": 113.31, "ptb_test_oov": 0.0,
         "wt2_valid_ppl": 162.8, "wt2_valid_oov": 0.2251, "wt2_test_ppl": 148.3, "wt2_test_oov": 0.2299},
        {"system": "lstm_tied", "cell": "lstm", "epochs": 6.0, "train_tokens": 929589, "tokens_per_second": 3933.0,
         "train_wall_seconds": 1458.0, "eval_wall_seconds": 60.0, "torch_threads": 1, "config": dict(RECIPE, tie_weights=True),
         "history": [{"epoch": 1, "valid_perplexity": 169.4}, {"epoch": 2, "valid_perplexity": 137.8}],
         "ptb_valid_ppl": 110.9, "ptb_valid_oov": 0.0, "ptb_test_ppl": 106.4, "ptb_test_oov": 0.0,
         "wt2_valid_ppl": 154.8, "wt2_valid_oov": 0.2251, "wt2_test_ppl": 141.7, "wt2_test_oov": 0.2299},
    ],
    "table": ["STALE"],
}
THREADS = {
    "machine": "x86_64, cpu; torch 2.13.0+cpu",
    "config": "configs/tagger.cfg",
    "rows": [
        {"task": task, "machine": load, "processes": processes, "threads": threads,
         "words_per_second_per_process": wps, "raw": [{"words_per_second": wps}] * processes}
        for task, load, processes, threads, wps in (
            ("train", "idle", 1, 1, 1234.0), ("train", "idle", 1, 2, 1851.0),
            ("train", "busy", 2, 1, 1100.0), ("train", "busy", 2, 2, 880.0),
            ("predict", "idle", 1, 1, 50000.0), ("predict", "idle", 1, 2, 75000.0),
            ("predict", "busy", 2, 1, 45000.0), ("predict", "busy", 2, 2, 40000.0),
        )
    ],
}

SCANS = {
    "setup": "2 x 128 bidirectional",
    "rows": [
        {"system": "mingru, loop", "length": 25, "train": 25000.0, "predict": 87000.0},
        {"system": "mingru, loop, int8", "length": 25, "train": None, "predict": 190000.0},
    ],
}


@pytest.mark.parametrize("name,data,expected", [
    ("benchmark_tagger.json", TAGGER, ["| rnn_lstm (rnn_tagger, cell=lstm) | tag | 94.47 | 94.85 | 63.55 | 78.14 | 56,423 | 2.82x | 1.00x | – | – | 1,000 | 1.00x | 14.3 min |",
                                       "| 112,846 | 5.64x | 2.00x | – | 41% | 2,500 | 2.50x | 7.2 min |",
                                       "| 225,693 | 11.28x | 4.00x | 2.00x | – | – | – | 7.2 min |"]),
    ("benchmark_baselines.json", BASELINES, ["| wsj_sample | hmm_order2 (hmm_tagger, order 2) | tag |", "94.95", "78.14 (643)", "95.46"]),
    ("benchmark_ner.json", NER, ["| conll2003 | rnn_ner_crf_lstm (rnn_ner, lstm + CRF) | valid | 91.05 | 90.79 | 90.92 | 92.6 | 93.5 | 87.2 | 87.6 | 51,742 | 5,969 | 1.00x | 18.5 min | one run |",
                                 "| uner | rnn_ner_crf_lstm (rnn_ner, lstm + CRF) | test |", "68.21"]),
    ("lm_benchmark.json", LM, ["| lstm | shared recipe | 6 | 116.9 | 113.3 | 162.8 (22.5%) | 148.3 (23.0%) | 4,219 | 22.7 min |",
                               "| lstm_tied | tie_weights=True |", "| lstm_tied | 169.4 | 137.8 |"]),
    ("benchmark_scans.json", SCANS, ["| mingru, loop | 25,000 | 87,000 |", "| mingru, loop, int8 | – | 190,000 |"]),
    ("benchmark_threads.json", THREADS, ["| train | idle | 1 | 1,234 | 1,851 | 1.50x |", "| predict | busy | 2 | 45,000 | 40,000 | 0.89x |",
                                         "2 threads vs 1"]),
])
def test_each_script_renders_its_results_file(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    table = render_readme.render_file(path)
    for text in expected:
        assert text in table, table
    assert "STALE" not in table
    blocks, block = [], []  # each markdown table: its lines have as many cells as its header
    for line in table.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            blocks, block = blocks + [block], []
    assert blocks and all(len({line.count("|") for line in b}) == 1 and set(b[1]) <= set("|-:") for b in blocks), table


def test_benchmark_ner_measures_one_system_and_keeps_earlier_rows_in_order(tmp_path):
    """main's measuring path on a pipeline already trained (ensure_trained leaves it be): a blank
    pipeline stands in for a trained one, so scoring, speed and --keep run."""
    import spacy
    from spacy.tokens import Doc, DocBin

    import typer

    benchmark_ner = render_readme.load_script("benchmark_ner")
    nlp = spacy.blank("en")
    (tmp_path / "corpus" / "conll2003").mkdir(parents=True)
    docs = [Doc(nlp.vocab, words=["Anna", "visits", "Paris", "."], ents=["B-PER", "O", "B-LOC", "O"]) for _ in range(3)]
    DocBin(docs=docs).to_disk(tmp_path / "corpus" / "conll2003" / "valid.spacy")
    for system in ("rnn_ner_crf_mingru", "rnn_ner_crf_lstm"):
        trained = tmp_path / "training" / "conll2003" / system
        trained.mkdir(parents=True)
        nlp.to_disk(trained / "model-best")
        (trained / "train_time.json").write_text(json.dumps({"seconds": 120.0}))
    output = tmp_path / "benchmark_ner.json"
    output.write_text(json.dumps(NER))
    benchmark_ner.main(tmp_path / "corpus", tmp_path / "training", output, systems="conll2003/rnn_ner_crf_mingru",
                       retrain=False, max_steps=0, train_only=False, keep=True)
    data = json.loads(output.read_text())
    # the new row goes where SYSTEMS lists it: after the CoNLL LSTM row, before the UNER rows
    assert list(data["systems"]) == ["conll2003/rnn_ner_crf_lstm", "conll2003/rnn_ner_crf_mingru", "uner/rnn_ner_crf_lstm"]
    row = data["systems"]["conll2003/rnn_ner_crf_mingru"]
    assert row["run"] == data["run"] != "earlier run"
    assert row["valid"]["ents_r"] == 0.0 and row["train_seconds"] == 120.0  # a blank pipeline finds no entity
    assert row["valid"]["n_words"] == 12 and row["entities_per_second"] == 0.0
    assert row["speed_ratio"] is None  # its LSTM row was not measured in this run: no ratio across runs
    kept = data["systems"]["uner/rnn_ner_crf_lstm"]
    assert kept["run"] == "earlier run" and kept["test"] == NER["systems"]["uner/rnn_ner_crf_lstm"]["test"]
    assert kept["speed_ratio"] == 1.0  # its own run's LSTM row, itself
    assert f"| – | 2.0 min | {data['run']} |" in data["table"], data["table"]
    assert "| 1.00x | 18.5 min | earlier run |" in data["table"], data["table"]
    # measured together, each round pairs them; without --keep the file holds this run only. The
    # int8 row runs rnn_ner_crf_mingru's trained pipeline (it has no training of its own).
    benchmark_ner.main(tmp_path / "corpus", tmp_path / "training", output,
                       systems="conll2003/rnn_ner_crf_mingru,conll2003/rnn_ner_crf_lstm,conll2003/rnn_ner_crf_mingru_int8",
                       retrain=False, max_steps=0, train_only=False, keep=False)
    data = json.loads(output.read_text())
    assert sorted(data["systems"]) == ["conll2003/rnn_ner_crf_lstm", "conll2003/rnn_ner_crf_mingru",
                                       "conll2003/rnn_ner_crf_mingru_int8"]
    assert not (tmp_path / "training" / "conll2003" / "rnn_ner_crf_mingru_int8").exists()
    assert data["systems"]["conll2003/rnn_ner_crf_mingru_int8"]["train_seconds"] == 120.0
    lstm, mingru = data["systems"]["conll2003/rnn_ner_crf_lstm"], data["systems"]["conll2003/rnn_ner_crf_mingru"]
    assert lstm["speed_ratio"] == 1.0 and len(lstm["words_per_second_rounds"]) == len(mingru["words_per_second_rounds"]) >= 2
    expected = statistics.median(a / b for a, b in zip(mingru["words_per_second_rounds"], lstm["words_per_second_rounds"]))
    assert mingru["speed_ratio"] == pytest.approx(expected)
    with pytest.raises(typer.BadParameter, match="unknown system.*conll2003/rnn_ner_crf_mingru_typo"):
        benchmark_ner.main(tmp_path / "corpus", tmp_path / "training", output, systems="conll2003/rnn_ner_crf_mingru_typo",
                           retrain=False, max_steps=0, train_only=False, keep=False)


def test_baselines_rows_follow_the_dataset_order(tmp_path):
    path = tmp_path / "benchmark_baselines.json"
    path.write_text(json.dumps(BASELINES))
    table = render_readme.render_file(path)
    assert table.index("| wsj_sample |") < table.index("| ewt_upos |")


def test_lm_run_of_one_epoch_has_no_curve_table(tmp_path):
    rows = [dict(row, epochs=1.0, history=row["history"][:1]) for row in LM["results"]]
    for row in rows:
        for key in ("ptb_test_ppl", "wt2_valid_ppl", "wt2_test_ppl"):
            del row[key]
    path = tmp_path / "lm_rnn_lr.json"
    path.write_text(json.dumps(dict(LM, results=rows)))
    table = render_readme.render_file(path)
    assert "| lstm | shared recipe | 1 | 116.9 | 4,219 | 22.7 min |" in table
    assert "after each epoch" not in table and "PTB test" not in table


def test_benchmark_textcat_averages_seed_rows_per_dataset():
    """The textcat table's means: trec/x with trec/x_seed1, accuracy and macro F averaged; a
    config without seed rows gets no mean row."""
    benchmark = render_readme.load_script("benchmark_textcat")
    row = lambda acc, f: {"description": "d", "dev": {"accuracy": acc, "macro_f": f}, "docs_per_second": 1.0,  # noqa: E731
                          "train_seconds": 60.0, "run": "r"}
    data = {"machine": "m", "systems": {"trec/x": row(0.80, 0.70), "trec/x_seed1": row(0.90, 0.74), "trec/y": row(0.5, 0.5)}}
    means = benchmark.render_markdown(data).split("(rows averaged)")[1]
    assert "| trec | x (x, x_seed1) | 2 | 85.00 | 72.00 |" in means
    assert "| trec | y" not in means


def tagger_row(dev: float, wps: List[float], train_wps: Optional[List[float]] = None, int8_of: Optional[str] = None) -> Dict:
    """A row of scripts/benchmark_tagger.py's results: dev accuracy, per-round tagging (and training) words/s."""
    row = {"description": "d", "attr": "tag", "dev": dict(ACCURACY, token_acc=dev), "test": ACCURACY,
           "words_per_second": statistics.median(wps), "words_per_second_rounds": wps, "train_seconds": 60.0,
           "train_words_per_second": statistics.median(train_wps) if train_wps else None,
           "train_words_per_second_rounds": train_wps}
    return dict(row, int8_of=int8_of) if int8_of else row


def test_tagger_aims_measure_each_row_against_its_own_baseline_and_count_what_meets_the_aims(tmp_path):
    """Two trainings of config x beside the LSTM's two: x trains at 2.5x and 1.9x the LSTM (one of two
    at 2x), tags at 1.6x and 1.5x; each int8 row against its own float row (x_int8 1.6x of x, 4.8x of
    the CNN; x_seed1_int8 1.4x of x_seed1); accuracy means over the trainings. A run without the
    CNN row does not count; a config no file holds is an error naming it."""
    aims = render_readme.load_script("tagger_aims")
    rows = {
        "spacy_cnn": tagger_row(0.930, [100.0, 50.0]),
        "rnn_lstm": tagger_row(0.946, [200.0, 100.0], [10.0, 20.0]),
        "rnn_lstm_seed1": tagger_row(0.944, [200.0, 100.0], [10.0, 20.0]),
        "x": tagger_row(0.948, [320.0, 160.0], [25.0, 50.0]),
        "x_seed1": tagger_row(0.946, [300.0, 150.0], [19.0, 38.0]),
        "x_int8": tagger_row(0.946, [512.0, 256.0], int8_of="x"),
        "x_seed1_int8": tagger_row(0.946, [420.0, 210.0], int8_of="x_seed1"),
    }
    without_cnn = {name: row for name, row in rows.items() if name != "spacy_cnn"}
    data = aims.tally({"run1.json": {"systems": rows}, "old.json": {"systems": without_cnn}}, ["x"])
    entry = data["configs"]["x"]
    assert entry["runs"] == ["run1.json"]
    measured = {aim: [round(v, 4) for v in values] for aim, values in entry["aims"].items()}
    assert measured == {"train": [2.5, 1.9], "tag": [1.6, 1.5], "accuracy": [0.2], "int8_speed": [1.6, 1.4],
                        "int8_accuracy": [-0.1], "int8_vs_cnn": [5.12, 4.2]}
    # a second run of the same pipelines: its speeds count, its accuracy (the same) not again
    twice = aims.tally({"run1.json": {"systems": rows}, "run2.json": {"systems": rows}}, ["x"])["configs"]["x"]["aims"]
    assert len(twice["train"]) == 4 and len(twice["accuracy"]) == 1 and len(twice["int8_accuracy"]) == 1
    path = tmp_path / "tagger_aims.json"
    path.write_text(json.dumps(data))
    table = render_readme.render_file(path)
    assert "| train | training words/s vs the LSTM's | ≥ 2x | 1.90x to 2.50x | 1 of 2 |" in table
    assert "| int8_speed | int8 words/s vs its float row's | ≥ 1.5x | 1.40x to 1.60x | 1 of 2 |" in table
    assert "| int8_accuracy | int8 mean dev accuracy minus the float rows' | ≥ -0.1 | -0.10 | 1 of 1 |" in table
    with pytest.raises(ValueError, match="no results file has y"):
        aims.tally({"run1.json": {"systems": rows}}, ["y"])


def test_tagger_processes_table_counts_each_process_against_the_aims(tmp_path):
    """One line per process; the last counts the processes at or above each aim."""
    rows = [{"system": "x", "tag_vs_lstm": 1.6, "int8_vs_float": 1.55, "int8_vs_cnn": 4.0},
            {"system": "x_seed1", "tag_vs_lstm": 1.7, "int8_vs_float": 1.45, "int8_vs_cnn": 2.9}]
    path = tmp_path / "benchmark_tagger_processes.json"
    path.write_text(json.dumps({"machine": "m", "processes": rows}))
    table = render_readme.render_file(path)
    assert "| 2 | x_seed1 | 1.70x | 1.45x | 2.90x |" in table
    assert "| | at or above the aim | 2 of 2 (median 1.65x) | 1 of 2 (median 1.50x) | 1 of 2 (median 3.45x) |" in table
    assert "page faults" not in table  # files from before the count have no such column
    rows[1]["page_faults_per_pass"] = {"x_seed1": 12345, "x_seed1_int8": 0, "rnn_lstm": 7, "spacy_cnn": 8}
    path.write_text(json.dumps({"machine": "m", "processes": rows}))
    table = render_readme.render_file(path)
    assert "| 1 | x | 1.60x | 1.55x | 4.00x | – |" in table
    assert "| 2 | x_seed1 | 1.70x | 1.45x | 2.90x | 12,345 / 0 |" in table


def test_tagger_benchmarks_record_glibcs_malloc_tunables(monkeypatch):
    """They change prediction speed, so a run made with them says so in its Machine line."""
    benchmark = render_readme.load_script("benchmark_tagger")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert "GLIBC_TUNABLES" not in benchmark.machine_description()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=7")
    assert benchmark.machine_description().endswith("; GLIBC_TUNABLES=glibc.malloc.trim_threshold=7")


def test_tagger_table_gives_each_int8_rows_agreement_with_its_float_row():
    """The share of test tokens an int8 row tags as its float row does, under the table when measured."""
    benchmark = render_readme.load_script("benchmark_tagger")
    assert benchmark.agreement([["A", "B"], ["C"]], [["A", "X"], ["C"]]) == pytest.approx(2 / 3)
    rows = {"x": tagger_row(0.948, [1.0]), "x_int8": tagger_row(0.947, [2.0], int8_of="x")}
    assert "int8 rows" not in benchmark.render_markdown({"machine": "m", "systems": rows})  # older files
    rows["x_int8"]["test"] = dict(ACCURACY, agreement_with_float=0.99876)
    assert "int8 rows, test tokens tagged as their float row tags them: x_int8 99.88%" in benchmark.render_markdown(
        {"machine": "m", "systems": rows})


def test_readme_config_blocks_parse_and_name_registered_functions():
    """Each ```ini block of the README parses as a spaCy config and names only registered functions,
    so it can be pasted into a config (a comment after a value becomes part of the value)."""
    import re

    import spacy_rnn  # noqa: F401 (registers spacy-rnn's functions)
    from spacy.util import registry
    from thinc.api import Config

    def named(node):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from named(value)
            elif key.startswith("@"):
                yield key[1:], value

    blocks = re.findall(r"```ini\n(.*?)```", README.read_text(encoding="utf8"), flags=re.S)
    assert blocks
    for block in blocks:
        # a block is part of a config: the sections above its own are in the rest of it
        headers = re.findall(r"^\[([^\]]+)\]", block, flags=re.M)
        parents = {".".join(h.split(".")[:i]) for h in headers for i in range(1, h.count(".") + 1)} - set(headers)
        text = "".join(f"[{parent}]\n\n" for parent in sorted(parents, key=len)) + block
        names = list(named(Config().from_str(text, interpolate=False)))
        assert names
        for registry_name, function in names:
            assert getattr(registry, registry_name).get(function)
