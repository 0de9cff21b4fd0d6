"""The parser workflow end to end on the real corpus (slow: run with --slow), and the
benchmark_parser table rendered from a results file (fast)."""
import importlib.util
import json

import pytest

from .test_project import DATA, REPO, copy_project

_spec = importlib.util.spec_from_file_location("render_readme", REPO / "scripts" / "render_readme.py")
render_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_readme)


def scores(uas, las, tag, pos, morph, sents):
    return {"dep_uas": uas, "dep_las": las, "tag_acc": tag, "pos_acc": pos, "morph_acc": morph, "sents_f": sents,
            "n_sentences": 2001, "n_tokens": 25094}


PARSER = {
    "machine": "x86_64, 2 torch threads, cpu; torch 2.13.0+cpu, spaCy 3.8.7",
    "systems": {
        "spacy_cnn_efficiency": {
            "description": "spaCy, CNN tok2vec (-o efficiency)",
            "dev": scores(0.8512, 0.8201, 0.9401, 0.9502, 0.9553, 0.9012),
            "test": scores(0.8634, 0.8345, 0.9425, 0.9517, 0.9561, 0.9123),
            "words_per_second": 10000.0, "train_seconds": 2400.0, "max_steps": 8000,
        },
        "rnn_shared": {
            "description": "tagger + morphologizer + parser on one spacy_rnn.RNNEncoder.v2",
            "dev": scores(0.8823, 0.8567, 0.9512, 0.9611, 0.9634, 0.9234),
            "test": scores(0.8911, 0.8676, 0.9534, 0.9623, 0.9645, None),
            "words_per_second": 15000.0, "train_seconds": 3000.0, "max_steps": 12000,
        },
    },
    "table": "STALE",
}


def test_benchmark_parser_renders_its_results_file(tmp_path):
    path = tmp_path / "benchmark_parser.json"  # the stem chooses the renderer
    path.write_text(json.dumps(PARSER))
    table = render_readme.render_file(path)
    assert "STALE" not in table
    assert PARSER["machine"] in table
    assert ("| rnn_shared (tagger + morphologizer + parser on one spacy_rnn.RNNEncoder.v2) | test | "
            "89.11 | 86.76 | 95.34 | 96.23 | 96.45 | – | 15,000 | 1.50x | 12,000 | 50.0 min | one run |") in table, table
    assert "| spacy_cnn_efficiency (spaCy, CNN tok2vec (-o efficiency)) | dev | 85.12 | 82.01 | 94.01 |" in table
    assert "| 10,000 | 1.00x | 8,000 | 40.0 min |" in table
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 4  # header, rule, two systems x (dev, test)
    assert len({line.count("|") for line in lines}) == 1, table


def test_benchmark_parser_keeps_earlier_rows_with_their_own_speed_ratio(tmp_path):
    benchmark_parser = render_readme.load_script("benchmark_parser")
    path = tmp_path / "benchmark_parser.json"
    path.write_text(json.dumps({**PARSER, "systems": {**PARSER["systems"], "spacy_bilstm": {
        **PARSER["systems"]["rnn_shared"], "description": "spaCy BiLSTM", "words_per_second": 5000.0}}}))
    kept = benchmark_parser.kept_rows(path, measured=["rnn_shared"], baseline=benchmark_parser.baseline_of)
    assert sorted(kept) == ["spacy_bilstm", "spacy_cnn_efficiency"]
    # each kept row's ratio is against the baseline of the run it was measured in
    assert kept["spacy_bilstm"]["speed_ratio"] == pytest.approx(0.5)
    assert kept["spacy_bilstm"]["run"] == "earlier run"
    assert kept["spacy_bilstm"]["dev"] == PARSER["systems"]["rnn_shared"]["dev"]
    # a new run measuring the baseline again at another speed leaves the kept ratios as they were
    data = {"machine": "m", "run": "2026-12-02", "systems": {**kept, "rnn_shared": {
        **PARSER["systems"]["rnn_shared"], "words_per_second": 30000.0, "speed_ratio": 2.0, "run": "2026-12-02"}}}
    table = benchmark_parser.render_markdown(data)
    assert "| 5,000 | 0.50x | 12,000 | 50.0 min | earlier run |" in table, table
    assert "| 30,000 | 2.00x | 12,000 | 50.0 min | 2026-12-02 |" in table, table
    assert benchmark_parser.kept_rows(tmp_path / "missing.json", measured=[], baseline=benchmark_parser.baseline_of) == {}


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "ud_english_ewt").exists(), reason="needs ../shared/data")
def test_parser_workflow_smoke(tmp_path):
    from spacy.cli.project.run import project_run

    root = copy_project(tmp_path / "project")
    project_run(root, "parser", overrides={"vars.data_dir": str(DATA), "vars.parser_steps": 20})
    assert (root / "training" / "parser" / "model-best").exists()
    metrics = json.loads((root / "metrics" / "parser.json").read_text())
    for key in ("dep_uas", "dep_las", "tag_acc", "pos_acc", "morph_acc", "sents_f"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 1.0, (key, metrics.get(key))
    html = (root / "parses.html").read_text()
    # displaCy's dependency markup: one SVG per sentence, a token (word over tag) per word. After
    # 20 steps the parser may still make every word a root, so arcs (displacy-arc) are not required.
    assert html.count('<svg') == html.count('class="displacy"') == 10, html[:500]
    assert 'class="displacy-token"' in html and 'class="displacy-tag"' in html
    assert '>What</tspan>' in html  # the first word of EWT test


def test_benchmark_parser_measures_trained_pipelines_and_keeps_earlier_rows(tmp_path):
    """main's measuring path on pipelines already trained (ensure_trained leaves them be): a blank
    pipeline stands in for a trained one, so only scoring, the interleaved speeds and --keep run."""
    import spacy
    from spacy.tokens import Doc, DocBin

    benchmark_parser = render_readme.load_script("benchmark_parser")
    nlp = spacy.blank("en")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "dev", "test"):
        docs = [Doc(nlp.vocab, words=["A", "short", "sentence", "."]) for _ in range(3)]
        DocBin(docs=docs).to_disk(corpus / f"en_ewt-ud-{split}.spacy")
    training = tmp_path / "training"
    (training / "rnn_shared").mkdir(parents=True)
    nlp.to_disk(training / "rnn_shared" / "model-best")
    (training / "rnn_shared" / "train_time.json").write_text(json.dumps({"seconds": 120.0}))
    output = tmp_path / "benchmark_parser.json"
    output.write_text(json.dumps(PARSER))
    benchmark_parser.main(corpus, training, output, systems="rnn_shared", retrain=False, limit=0, max_steps=0,
                          train_only=False, keep=True)
    data = json.loads(output.read_text())
    row = data["systems"]["rnn_shared"]
    assert row["run"] == data["run"] != "earlier run"
    assert row["train_seconds"] == 120.0 and row["test"]["n_sentences"] == 3
    assert len(row["words_per_second_rounds"]) >= 2 and row["words_per_second"] > 0
    assert row["speed_ratio"] is None  # the baseline was not measured in this run
    kept = data["systems"]["spacy_cnn_efficiency"]
    assert kept["run"] == "earlier run" and kept["speed_ratio"] == 1.0
    assert kept["dev"] == PARSER["systems"]["spacy_cnn_efficiency"]["dev"]
