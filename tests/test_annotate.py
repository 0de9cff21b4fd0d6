"""`spacy_rnn annotate`: end to end on a small mixed input with malformed
records, the count invariant, kill-and-resume, n_process, and the Ray engine
(--slow)."""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import fix_random_seed
from typer.testing import CliRunner

from spacy_rnn.batch import annotate
from spacy_rnn.batch import engines, outputs
from spacy_rnn.batch.inputs import InputError
from spacy_rnn.cli import make_app

from .conftest import SMALL_ENCODER, TRAIN_DATA, make_examples

TEXTS = ["I like green eggs .", "", "The dog runs fast", "Eat blue ham today !"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A small trained pipeline: rnn_tagger and rnn_ner (every NN/NNS word is a FOOD entity)."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": SMALL_ENCODER}})
    nlp.add_pipe("rnn_ner", config={"model": {"@architectures": "spacy_rnn.RNNEntityRecognizer.v1", "encoder": SMALL_ENCODER}})
    examples = []
    for eg, (words, tags, _) in zip(make_examples(nlp), TRAIN_DATA):
        ents = ["U-FOOD" if tag.startswith("NN") else "O" for tag in tags]  # BILUO
        examples.append(Example.from_dict(eg.predicted, {"words": words, "tags": tags, "entities": ents}))
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(60):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("model") / "pipeline"
    nlp.to_disk(path)
    return path


def write_inputs(folder: Path) -> Path:
    """Mixed inputs: 7 txt lines (one not UTF-8), 6 jsonl lines (4 malformed), 3 docs of a .spacy file."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [text.encode() for text in TEXTS] + [b"caf\xe9 au lait", "I like ham .".encode(), b"x" * 300]
    (folder / "a.txt").write_bytes(b"\n".join(lines) + b"\n")
    jsonl = [
        json.dumps({"text": "Eat green ham !", "id": 7, "source": {"site": "x"}}),
        json.dumps({"id": 8}),
        "{not json",
        json.dumps({"text": ["a list"]}),
        json.dumps("just a string"),
        json.dumps({"text": "The eggs ."}),
    ]
    (folder / "b.jsonl").write_text("\n".join(jsonl) + "\n", encoding="utf8")
    vocab = spacy.blank("en").vocab
    db = DocBin(store_user_data=True)
    for i, words in enumerate([["Blue", "eggs"], ["I", "run"], []]):
        doc = Doc(vocab, words=words)
        doc.user_data["my_key"] = i
        db.add(doc)
    db.to_disk(folder / "c.spacy")
    return folder


def read_jsonl_shards(out: Path):
    rows = []
    for path in sorted((out / "shards").glob("shard-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]
    return rows


def outputs_of(out: Path):
    """Everything a run wrote, but for timings: shard files, rejects and counts."""
    files = {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir()) if not p.name.endswith(".done.json")}
    summary = json.loads((out / "summary.json").read_text())
    counts = {key: summary[key] for key in ("inputs", "outputs", "rejects", "shards")}
    return files, (out / "rejects.jsonl").read_text(), counts


def test_local_end_to_end_jsonl(pipeline, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    summary = annotate(pipeline, inputs, tmp_path / "out", fmt="jsonl", shard_size=4, max_length=200)
    assert (summary["inputs"], summary["outputs"], summary["rejects"]) == (16, 10, 6)
    assert summary["inputs"] == summary["outputs"] + summary["rejects"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["inputs"] == 16
    rows = read_jsonl_shards(tmp_path / "out")
    a, b, c = str(inputs / "a.txt"), str(inputs / "b.jsonl"), str(inputs / "c.spacy")
    assert [row["source"] for row in rows] == [f"{a}:{i}" for i in (1, 2, 3, 4, 6)] + [f"{b}:1", f"{b}:6"] + [f"{c}:{i}" for i in (1, 2, 3)]
    assert [row["text"] for row in rows[:5]] == TEXTS + ["I like ham ."]
    first = rows[0]
    assert first["tokens"] == ["I", "like", "green", "eggs", "."]
    assert set(first) == {"source", "text", "tokens", "tags", "entities"}  # what the pipeline sets
    assert first["tags"] == ["PRP", "VBP", "JJ", "NNS", "."]
    assert [e["label"] for e in first["entities"]] == ["FOOD"]
    assert rows[1]["tokens"] == [] and rows[1]["tags"] == []  # an empty line is an empty doc
    assert rows[5]["meta"] == {"id": 7, "source": {"site": "x"}}  # meta fields kept
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"]) for r in rejects] == [(a, 5), (a, 7), (b, 2), (b, 3), (b, 4), (b, 5)]
    reasons = [r["reason"] for r in rejects]
    assert "not UTF-8" in reasons[0] and "over max_length 200" in reasons[1]
    assert reasons[2] == "no 'text' field" and reasons[3].startswith("invalid JSON")
    assert "not a string" in reasons[4] and "not an object" in reasons[5]


def test_spacy_format_keeps_user_data_and_order(pipeline, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    annotate(pipeline, inputs, tmp_path / "out", fmt="spacy", shard_size=100, max_length=200)
    vocab = spacy.blank("en").vocab
    docs = []
    for path in sorted((tmp_path / "out" / "shards").glob("*.spacy")):
        docs += list(DocBin().from_disk(path).get_docs(vocab))
    assert len(docs) == 10
    assert [d.text for d in docs[:5]] == TEXTS + ["I like ham ."]
    assert docs[0][3].tag_ == "NNS" and docs[0].ents
    assert docs[5].user_data[outputs.META_KEY] == {"id": 7, "source": {"site": "x"}}
    assert [d.user_data.get("my_key") for d in docs[7:]] == [0, 1, 2]  # .spacy input: user data kept
    assert docs[7].user_data[outputs.SOURCE_KEY].endswith("c.spacy:1")


def test_input_as_glob_and_single_file(pipeline, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    summary = annotate(pipeline, str(inputs / "*.jsonl"), tmp_path / "g", fmt="jsonl", max_length=200)
    assert (summary["inputs"], summary["outputs"]) == (6, 2)
    summary = annotate(pipeline, inputs / "c.spacy", tmp_path / "f", fmt="jsonl")
    assert (summary["inputs"], summary["outputs"]) == (3, 3)


def test_interrupted_run_resumes_to_the_same_output(pipeline, tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "in")
    annotate(pipeline, inputs, tmp_path / "whole", fmt="jsonl", shard_size=2, max_length=200)
    expected = outputs_of(tmp_path / "whole")

    real_write = outputs.write_shard
    calls = []

    def crash_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        calls.append(args[1].index)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(engines, "write_shard", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        annotate(pipeline, inputs, tmp_path / "resumed", fmt="jsonl", shard_size=2, max_length=200)
    assert not (tmp_path / "resumed" / "summary.json").exists()
    assert len(list((tmp_path / "resumed" / "shards").glob("*.done.json"))) == 3
    # A crash between a shard's data file and its manifest: the shard is not done, so it is redone.
    real_manifest = outputs.atomic_output
    monkeypatch.setattr(engines, "write_shard", real_write)

    def no_manifest(path):
        if str(path).endswith(".done.json"):
            raise KeyboardInterrupt("killed before the manifest")
        return real_manifest(path)

    monkeypatch.setattr(outputs, "atomic_output", no_manifest)
    with pytest.raises(KeyboardInterrupt):
        annotate(pipeline, inputs, tmp_path / "resumed", fmt="jsonl", shard_size=2, max_length=200)
    monkeypatch.setattr(outputs, "atomic_output", real_manifest)
    written = []
    monkeypatch.setattr(engines, "write_shard", lambda *a, **k: written.append(a[1].index) or real_write(*a, **k))
    summary = annotate(pipeline, inputs, tmp_path / "resumed", fmt="jsonl", shard_size=2, max_length=200)
    assert summary["resumed"] and summary["shards_skipped"] == 3
    assert written == sorted(set(range(summary["shards"])) - set(calls))  # no shard written twice, none missing
    assert outputs_of(tmp_path / "resumed") == expected


@pytest.mark.slow  # about 15 s: a subprocess killed mid-run, then resumed (test_interrupted_run_resumes_to_the_same_output covers resuming in the default run)
def test_killed_process_resumes_to_the_same_output(pipeline, tmp_path):
    """SIGKILL a real run part way (after some shards), run it again, compare with an uninterrupted run."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "t.txt").write_text("".join(f"I like green eggs number {i} .\n" for i in range(400)), encoding="utf8")
    args = [sys.executable, "-m", "spacy_rnn", "annotate", str(pipeline), str(inputs), "--format", "jsonl",
            "--shard-size", "2", "--batch-size", "4"]
    subprocess.run(args + [str(tmp_path / "whole")], check=True, capture_output=True)
    expected = outputs_of(tmp_path / "whole")
    run = subprocess.Popen(args + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "killed" / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and run.poll() is None:
        if shards.exists() and len(list(shards.glob("*.done.json"))) >= 5:
            break
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    n_done = len(list(shards.glob("*.done.json")))
    assert 0 < n_done < 200, "the run was not killed part way"
    assert not (tmp_path / "killed" / "summary.json").exists()
    result = subprocess.run(args + [str(tmp_path / "killed")], check=True, capture_output=True, text=True)
    assert f"({n_done} already written)" in result.stdout
    assert outputs_of(tmp_path / "killed") == expected


def test_a_different_run_in_the_same_directory_is_refused(pipeline, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    annotate(pipeline, inputs, tmp_path / "out", fmt="jsonl", shard_size=4)
    with pytest.raises(ValueError, match="another run.*shard_size"):
        annotate(pipeline, inputs, tmp_path / "out", fmt="jsonl", shard_size=5)


@pytest.mark.parametrize("fmt", ["jsonl", "spacy"])
def test_n_process_2_gives_the_same_output(pipeline, tmp_path, fmt):
    """Two worker processes, each annotating whole shards, write what one process writes."""
    inputs = write_inputs(tmp_path / "in")
    annotate(pipeline, inputs, tmp_path / "one", fmt=fmt, shard_size=3, max_length=200)
    summary = annotate(pipeline, inputs, tmp_path / "two", fmt=fmt, shard_size=3, max_length=200, n_process=2, batch_size=2)
    assert summary["n_process"] == 2 and summary["shards"] > 2
    assert outputs_of(tmp_path / "one") == outputs_of(tmp_path / "two")


def test_n_process_2_with_a_pipeline_that_does_not_load_raises_spacys_error(tmp_path):
    inputs = write_inputs(tmp_path / "in")
    with pytest.raises(OSError, match="E050"):
        annotate(tmp_path / "no_such_model", inputs, tmp_path / "out", fmt="jsonl", shard_size=3, n_process=2)


def fail_on_shard_2(nlp, shard, *args):
    if shard.index == 2:
        raise OSError("disk full")
    return ANNOTATE_SHARD(nlp, shard, *args)


ANNOTATE_SHARD = engines.annotate_shard


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the workers must inherit the patched function")
def test_a_failing_shard_in_a_worker_stops_the_run_and_a_resume_finishes_it(pipeline, tmp_path, monkeypatch):
    inputs = write_inputs(tmp_path / "in")
    annotate(pipeline, inputs, tmp_path / "one", fmt="jsonl", shard_size=3, max_length=200)
    monkeypatch.setattr(engines, "annotate_shard", fail_on_shard_2)
    with pytest.raises(OSError, match="disk full"):
        annotate(pipeline, inputs, tmp_path / "two", fmt="jsonl", shard_size=3, max_length=200, n_process=2)
    assert not (tmp_path / "two" / "summary.json").exists()
    monkeypatch.setattr(engines, "annotate_shard", ANNOTATE_SHARD)
    summary = annotate(pipeline, inputs, tmp_path / "two", fmt="jsonl", shard_size=3, max_length=200, n_process=2)
    assert summary["resumed"] and summary["shards_skipped"] >= 1
    assert outputs_of(tmp_path / "one") == outputs_of(tmp_path / "two")


def nested(depth: int) -> str:
    """A JSON value `depth` lists deep."""
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("fmt", ["jsonl", "spacy"])
def test_a_record_the_outputs_cannot_hold_is_a_reject_and_the_others_are_annotated(pipeline, tmp_path, fmt):
    """A lone surrogate (a JSON "\ud800" escape) in the text or in meta, a meta integer beyond 64 bits or meta
    nested too deep cannot be written (UTF-8, DocBin's msgpack) and once aborted the whole run."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    lines = [
        '{"text": "Eat green ham !"}',
        '{"text": "\\ud800 lone surrogate"}',
        '{"text": "ok", "note": "ab\\udfff"}',
        '{"text": "ok", "source": {"site": 1, "\\ud800x": 2}}',
        '{"text": "ok", "ids": [1, %d]}' % 2**70,
        '{"text": "ok", "deep": %s}' % nested(600),
        '{"text": "ok", "deep": %s}' % nested(100_000),
        '{"text": "ok", "id": %s}' % ("1" * 5000),
        '{"text": "I like \\ud83d\\ude00 .", "ids": [%d], "deep": %s}' % (2**64 - 1, nested(400)),  # all fine
    ]
    (inputs / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    (inputs / "a.txt").write_bytes(b"\xed\xa0\x80 a surrogate as UTF-8 bytes\nThe dog runs\n")
    summary = annotate(pipeline, inputs, tmp_path / "out", fmt=fmt)
    assert (summary["inputs"], summary["outputs"], summary["rejects"]) == (11, 3, 8)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text(encoding="utf8").splitlines()]
    a, b = str(inputs / "a.txt"), str(inputs / "b.jsonl")
    assert [(r["file"], r["line"]) for r in rejects] == [(a, 1)] + [(b, i) for i in range(2, 9)]
    assert rejects[0]["reason"].startswith("bytes that are not UTF-8")  # strict decoding: no surrogate in a text file
    assert [r["reason"] for r in rejects[1:]] == [
        "text is not valid Unicode: lone surrogate U+D800 at position 0",
        "field 'note' is not valid Unicode: lone surrogate U+DFFF at position 2",
        "field name 'source.\\ud800x' is not valid Unicode: lone surrogate U+D800 at position 0",
        "field 'ids[1]' is an integer beyond 64 bits, which DocBin user data cannot hold",
        "field 'deep" + "[0]" * 499 + "' nests deeper than 500 levels, which DocBin user data cannot hold",
        "JSON nested too deeply to read",
        "JSON that cannot be read: Exceeds the limit (4300 digits) for integer string conversion",
    ]
    if fmt == "jsonl":
        texts = [row["text"] for row in read_jsonl_shards(tmp_path / "out")]
    else:
        texts = [doc.text for path in sorted((tmp_path / "out" / "shards").glob("*.spacy"))
                 for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)]
    assert texts == ["The dog runs", "Eat green ham !", "I like \U0001F600 ."]


def test_a_file_name_that_is_not_utf8_is_refused_before_output_dir_is_written(pipeline, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    with open(os.fsencode(inputs) + b"/caf\xe9.txt", "wb") as file:
        file.write(b"The dog runs\n")
    with pytest.raises(InputError, match=r"caf\\udce9\.txt: the file name is not valid UTF-8"):
        annotate(pipeline, inputs, tmp_path / "out", fmt="jsonl")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value", [
    ("batch_size", 0), ("batch_size", -1), ("shard_size", 0), ("n_process", 0), ("workers", 0), ("max_length", 0),
])
def test_an_option_out_of_range_is_refused_before_output_dir_is_written(pipeline, tmp_path, option, value):
    inputs = write_inputs(tmp_path / "in")
    with pytest.raises(ValueError, match=f"^{option} must be at least 1, got {value}$"):
        annotate(pipeline, inputs, tmp_path / "out", fmt="jsonl", **{option: value})
    assert not (tmp_path / "out").exists()


def test_the_corrected_command_runs_where_a_refused_one_was_given(pipeline, tmp_path):
    """The refused command leaves no run.json behind that would refuse its correction as another run."""
    inputs = write_inputs(tmp_path / "in")
    runner = CliRunner()
    args = ["annotate", str(pipeline), str(inputs), str(tmp_path / "out"), "--format", "jsonl"]
    result = runner.invoke(make_app(), args + ["--shard-size", "0"])
    assert result.exit_code == 1 and "error: shard_size must be at least 1, got 0" in result.output
    result = runner.invoke(make_app(), args + ["--batch-size", "0"])
    assert result.exit_code == 1 and "error: batch_size must be at least 1, got 0" in result.output
    (inputs / "d.spacy").write_bytes(b"not a DocBin")
    result = runner.invoke(make_app(), args)
    assert result.exit_code == 1 and "d.spacy: not a readable .spacy file" in result.output
    assert not (tmp_path / "out").exists()
    (inputs / "d.spacy").unlink()
    result = runner.invoke(make_app(), args + ["--shard-size", "4"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["inputs"] == 16


@pytest.mark.parametrize("model, error", [("no_such_model", "E050"), ("not_a_pipeline", "E053.*meta.json")])
def test_n_process_2_refuses_a_pipeline_it_cannot_find_before_output_dir_is_written(tmp_path, model, error):
    """The workers load the pipeline, after run.json is written: it is looked for first."""
    inputs = write_inputs(tmp_path / "in")
    (tmp_path / "not_a_pipeline").mkdir()
    with pytest.raises(OSError, match=error):
        annotate(tmp_path / model, inputs, tmp_path / "out", fmt="jsonl", n_process=2)
    assert not (tmp_path / "out").exists()


def test_cli_errors_and_ray_hint(pipeline, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(make_app(), ["annotate", str(pipeline), str(tmp_path / "nothing*.txt"), str(tmp_path / "o")])
    assert result.exit_code == 1 and "no file matches it" in result.output
    result = runner.invoke(make_app(), ["annotate", str(tmp_path / "no_model"), str(tmp_path / "nothing*.txt"), str(tmp_path / "o")])
    assert result.exit_code == 1 and "error: [E050]" in result.output
    write_inputs(tmp_path / "in")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = runner.invoke(make_app(), ["annotate", str(pipeline), str(tmp_path / "in"), str(tmp_path / "o2"), "--engine", "ray"])
    assert result.exit_code == 1 and "pip install 'spacy-rnn[ray]'" in result.output


def test_spacy_cli_has_rnn_annotate():
    result = subprocess.run([sys.executable, "-m", "spacy", "rnn-annotate", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "resum" in result.stdout


@pytest.mark.slow
def test_ray_engine_matches_the_local_engine(pipeline, tmp_path):
    pytest.importorskip("ray.data")
    inputs = write_inputs(tmp_path / "in")
    annotate(pipeline, inputs, tmp_path / "local", fmt="jsonl", shard_size=3, max_length=200)
    handler = signal.getsignal(signal.SIGTERM)
    summary = annotate(pipeline, inputs, tmp_path / "ray", fmt="jsonl", shard_size=3, max_length=200, engine="ray", workers=2)
    assert signal.getsignal(signal.SIGTERM) is handler  # not Ray's (exit status 15), left behind by ray.init
    assert summary["engine"] == "ray" and summary["workers"] == 2
    assert outputs_of(tmp_path / "ray") == outputs_of(tmp_path / "local")


@pytest.mark.slow  # about 20 s: a local Ray instance, then a resume in this process
def test_sigterm_stops_a_ray_run_as_a_local_one(pipeline, tmp_path):
    """ray.init installs Ray's own SIGTERM handler: a Ray run stopped by SIGTERM exited with status 15
    and Ray's log lines, not as the local engines do (143, the shards kept, how to resume)."""
    pytest.importorskip("ray.data")
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "t.txt").write_text("".join(f"I like green eggs number {i} .\n" for i in range(400)), encoding="utf8")
    args = [str(pipeline), str(inputs), str(tmp_path / "out"), "--format", "jsonl", "--shard-size", "1",
            "--engine", "ray", "--workers", "1"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr_file:
        run = subprocess.Popen([sys.executable, "-m", "spacy_rnn", "annotate"] + args,
                               stdout=subprocess.DEVNULL, stderr=stderr_file)
    try:
        shards = tmp_path / "out" / "shards"
        deadline = time.time() + 120
        while time.time() < deadline and run.poll() is None and not list(shards.glob("*.done.json")):
            time.sleep(0.02)
        assert run.poll() is None, "the run ended before it was stopped"
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    stderr = log.read_text()
    assert run.returncode == 143 and "error: stopped by SIGTERM" in stderr, stderr
    n_done = len(list(shards.glob("*.done.json")))
    assert 0 < n_done < 400
    summary = annotate(pipeline, inputs, tmp_path / "out", fmt="jsonl", shard_size=1)
    assert summary["resumed"] and summary["shards_skipped"] == n_done and summary["outputs"] == 400


# A component that raises on some docs, and a pipeline whose nlp.max_length is 50 (an
# [nlp] after_creation callback), both registered by this file, which the tests import.
CUSTOM_CODE = '''
import spacy
from spacy.language import Language


@Language.component("annotate_test_boom")
def boom(doc):
    if "BOOM" in doc.text:
        raise ValueError("boom on " + doc.text)
    return doc


@spacy.registry.callbacks("annotate_test.max_length_50.v1")
def max_length_50():
    def set_max_length(nlp):
        nlp.max_length = 50
        return nlp
    return set_max_length
'''

# A component that only --code registers: the tests never import this file themselves.
CODE_ONLY = '''
from spacy.language import Language


@Language.component("annotate_test_code_cats", assigns=["doc.cats"])
def code_cats(doc):
    doc.cats = {"LONG": float(len(doc) > 3)}
    return doc
'''


@pytest.fixture(scope="module")
def custom_code(tmp_path_factory):
    path = tmp_path_factory.mktemp("code") / "custom.py"
    path.write_text(CUSTOM_CODE, encoding="utf8")
    spacy.util.import_file("python_code", path)
    return path


@pytest.fixture(scope="module")
def code_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("code") / "code_only.py"
    path.write_text(CODE_ONLY, encoding="utf8")
    return path


def edited_pipeline(source: Path, target: Path, edit) -> Path:
    """A copy of the pipeline `source` at `target`, its config.cfg changed by edit(config), so that a
    component or callback is named without being registered in this process."""
    import shutil

    shutil.copytree(source, target)
    config = spacy.util.load_config(target / "config.cfg")
    edit(config)
    config.to_disk(target / "config.cfg")
    return target


@pytest.fixture(scope="module")
def boom_pipeline(pipeline, custom_code, tmp_path_factory):
    """The tagger + NER pipeline with annotate_test_boom last."""
    nlp = spacy.load(pipeline)
    nlp.add_pipe("annotate_test_boom")
    path = tmp_path_factory.mktemp("model") / "boom"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def short_pipeline(pipeline, custom_code, tmp_path_factory):
    """The tagger + NER pipeline with nlp.max_length 50."""
    def edit(config):
        config["nlp"]["after_creation"] = {"@callbacks": "annotate_test.max_length_50.v1"}
    path = edited_pipeline(pipeline, tmp_path_factory.mktemp("model") / "short", edit)
    assert spacy.load(path).max_length == 50
    return path


@pytest.fixture(scope="module")
def code_pipeline(pipeline, tmp_path_factory):
    """The tagger + NER pipeline with annotate_test_code_cats (registered by CODE_ONLY) last."""
    def edit(config):
        config["nlp"]["pipeline"] = list(config["nlp"]["pipeline"]) + ["code_cats"]
        config["components"]["code_cats"] = {"factory": "annotate_test_code_cats"}
    return edited_pipeline(pipeline, tmp_path_factory.mktemp("model") / "code", edit)


def children_of(pid: int):
    """The process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# The annotate command with every shard slowed down (the forked workers inherit the patch).
SLOW_SHARDS = """
import sys, time
from spacy_rnn.batch import engines
real = engines.annotate_shard
engines.annotate_shard = lambda *args: (time.sleep(0.2), real(*args))[1]
from spacy_rnn.cli import make_app
make_app()(sys.argv[1:])
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists() or multiprocessing.get_start_method() != "fork",
                    reason="finds the workers in /proc; the workers must inherit the patched function")
def test_sigterm_to_the_main_process_stops_its_workers_and_a_rerun_resumes(pipeline, tmp_path):
    """`kill PID`, `timeout` or a batch scheduler SIGTERM the main process only: its --n-process workers
    used to keep running (writing shards, then blocked for good)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "t.txt").write_text("".join(f"I like green eggs number {i} .\n" for i in range(60)), encoding="utf8")
    options = {"fmt": "jsonl", "shard_size": 2}
    annotate(pipeline, inputs, tmp_path / "whole", **options)
    args = [str(pipeline), str(inputs), str(tmp_path / "out"), "--format", "jsonl", "--shard-size", "2", "--n-process", "2"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr_file:  # not a pipe: workers left running would hold it open
        run = subprocess.Popen([sys.executable, "-c", SLOW_SHARDS, "annotate"] + args,
                               stdout=subprocess.DEVNULL, stderr=stderr_file)
    workers = []
    try:
        shards = tmp_path / "out" / "shards"
        deadline = time.time() + 60
        while time.time() < deadline and run.poll() is None and len(list(shards.glob("*.done.json"))) < 2:
            time.sleep(0.02)
        workers = children_of(run.pid)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=30)
        stderr = log.read_text()
        assert len(workers) == 2, "the run ended before it was stopped"
        assert run.returncode == 143 and "error: stopped by SIGTERM" in stderr, stderr
        deadline = time.time() + 5
        while time.time() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
    n_done = len(list(shards.glob("*.done.json")))
    assert 0 < n_done < 30
    summary = annotate(pipeline, inputs, tmp_path / "out", **options)
    assert summary["resumed"] and summary["shards_skipped"] == n_done
    assert outputs_of(tmp_path / "out") == outputs_of(tmp_path / "whole")


@pytest.mark.parametrize("n_process", [1, 2])
def test_a_max_length_above_the_pipelines_raises_it(short_pipeline, tmp_path, n_process):
    """Texts between nlp.max_length and --max-length are annotated, not refused by spaCy (E088) part way
    through a run whose run.json then refused the corrected command."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    long_text = " ".join(["eggs"] * 20)  # 99 characters
    (inputs / "t.txt").write_text(f"I like ham .\n{long_text}\n{long_text} {long_text}\n", encoding="utf8")
    summary = annotate(short_pipeline, inputs, tmp_path / "out", fmt="jsonl", max_length=150, n_process=n_process)
    assert (summary["outputs"], summary["rejects"]) == (2, 1)
    rows = read_jsonl_shards(tmp_path / "out")
    assert [row["text"] for row in rows] == ["I like ham .", long_text] and len(rows[1]["tags"]) == 20
    summary = annotate(short_pipeline, inputs, tmp_path / "default", fmt="jsonl", n_process=n_process)
    assert (summary["outputs"], summary["rejects"]) == (1, 2)  # the pipeline's max_length, 50


@pytest.mark.parametrize("n_process", [1, 2])
def test_a_doc_the_pipeline_raises_on_is_a_reject_and_the_run_goes_on(pipeline, boom_pipeline, tmp_path, n_process):
    """The batch is annotated again one doc at a time; the doc that still fails becomes a reject naming its
    record and the error, the others of its batch and shard are annotated."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    lines = ["I like green eggs .", "Eat BOOM ham !", "The dog runs", "It went BOOM", "I like ham ."]
    (inputs / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf8")
    db = DocBin(store_user_data=True)
    for i, words in enumerate([["Blue", "eggs"], ["BOOM", "eggs"], ["I", "run"]]):
        doc = Doc(spacy.blank("en").vocab, words=words)
        doc.user_data["my_key"] = i
        db.add(doc)
    db.to_disk(inputs / "c.spacy")
    options = {"fmt": "spacy", "shard_size": 4, "batch_size": 3}
    summary = annotate(boom_pipeline, inputs, tmp_path / "out", n_process=n_process, **options)
    assert (summary["inputs"], summary["outputs"], summary["rejects"]) == (8, 5, 3)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    a, c = str(inputs / "a.txt"), str(inputs / "c.spacy")
    assert rejects == [
        {"file": a, "line": 2, "reason": "the pipeline raised ValueError: boom on Eat BOOM ham !", "stage": "pipeline"},
        {"file": a, "line": 4, "reason": "the pipeline raised ValueError: boom on It went BOOM", "stage": "pipeline"},
        {"file": c, "line": 2, "reason": "the pipeline raised ValueError: boom on BOOM eggs ", "stage": "pipeline"},
    ]
    assert summary["pipeline_rejects"] == 3
    # The docs that did not fail are what the pipeline without the component writes for them.
    annotate(pipeline, inputs, tmp_path / "plain", **options)
    vocab = spacy.blank("en").vocab

    def docs_of(out):
        return [doc for path in sorted((out / "shards").glob("*.spacy")) for doc in DocBin().from_disk(path).get_docs(vocab)]

    plain = [doc for doc in docs_of(tmp_path / "plain") if "BOOM" not in doc.text]
    got = docs_of(tmp_path / "out")
    assert [doc.to_json() for doc in got] == [doc.to_json() for doc in plain]
    assert [doc.user_data for doc in got] == [doc.user_data for doc in plain]
    assert [doc.user_data.get("my_key") for doc in got[-2:]] == [0, 2]


@pytest.mark.parametrize("n_process", [1, 2])
def test_code_imports_the_components_of_a_pipeline(code_pipeline, code_only, pipeline, tmp_path, n_process):
    inputs = write_inputs(tmp_path / "in")
    args = ["annotate", str(code_pipeline), str(inputs), "--format", "jsonl", "--max-length", "200",
            "--n-process", str(n_process)]
    result = CliRunner().invoke(make_app(), args + [str(tmp_path / "out"), "--code", str(code_only)])
    assert result.exit_code == 0, result.output
    rows = read_jsonl_shards(tmp_path / "out")
    assert [row["cats"] for row in rows[:2]] == [{"LONG": 1.0}, {"LONG": 0.0}]
    annotate(pipeline, inputs, tmp_path / "plain", fmt="jsonl", max_length=200)
    assert [{k: v for k, v in row.items() if k != "cats"} for row in rows] == read_jsonl_shards(tmp_path / "plain")
    result = CliRunner().invoke(make_app(), args + [str(tmp_path / "out2"), "--code", str(tmp_path / "nothing.py")])
    assert result.exit_code == 1 and f"error: {tmp_path / 'nothing.py'}: no such file" in result.output
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow  # a new interpreter and two spawned workers, each importing spaCy and torch (6 s here, alone)
def test_code_is_imported_by_spawned_workers(code_pipeline, code_only, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    script = "import multiprocessing, sys; multiprocessing.set_start_method('spawn'); " \
             "from spacy_rnn.cli import make_app; make_app()(sys.argv[1:])"
    args = ["annotate", str(code_pipeline), str(inputs), str(tmp_path / "out"), "--format", "jsonl", "--max-length", "200",
            "--shard-size", "3", "--n-process", "2", "--code", str(code_only)]
    result = subprocess.run([sys.executable, "-c", script] + args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl_shards(tmp_path / "out")
    assert len(rows) == 10 and all(set(row["cats"]) == {"LONG"} for row in rows)


def test_an_output_dir_inside_the_input_dir_is_not_read_as_input(pipeline, tmp_path):
    """A rerun read the first run's shards and rejects.jsonl as inputs, and refused to resume as another run."""
    inputs = write_inputs(tmp_path / "in")
    out = inputs / "out"
    first = annotate(pipeline, inputs, out, fmt="jsonl", shard_size=4, max_length=200)
    (out / "shards" / "shard-000001.done.json").unlink()  # as if interrupted
    again = annotate(pipeline, inputs, out, fmt="jsonl", shard_size=4, max_length=200)
    assert again["resumed"] and again["shards_skipped"] == first["shards"] - 1
    assert (again["inputs"], again["outputs"], again["rejects"]) == (16, 10, 6)
    with pytest.raises(InputError, match="holds no input files outside OUTPUT_DIR"):
        annotate(pipeline, out, out, fmt="jsonl")


def test_a_changed_pipeline_at_the_same_path_is_refused_and_the_same_by_another_path_resumes(pipeline, tmp_path,
                                                                                              monkeypatch):
    import shutil

    inputs = write_inputs(tmp_path / "in")
    model = tmp_path / "model"
    shutil.copytree(pipeline, model)
    options = {"fmt": "jsonl", "shard_size": 4, "max_length": 200}
    first = annotate(model, inputs, tmp_path / "out", **options)
    (tmp_path / "out" / "shards" / "shard-000001.done.json").unlink()  # as if interrupted
    monkeypatch.chdir(tmp_path)
    again = annotate("model", inputs, tmp_path / "out", **options)  # the same model by a relative path
    assert again["resumed"] and again["shards_skipped"] == first["shards"] - 1
    (tmp_path / "out" / "shards" / "shard-000001.done.json").unlink()
    nlp = spacy.load(model)  # the same pipeline with other weights, saved over it
    output_layer = nlp.get_pipe("rnn_tagger").model.get_ref("output_layer")
    output_layer.set_param("b", output_layer.get_param("b") + 1)
    nlp.to_disk(model)
    with pytest.raises(ValueError, match=r"another run \(different model; model files that differ: rnn_tagger/model\)"):
        annotate(model, inputs, tmp_path / "out", **options)
    assert not (tmp_path / "out" / "shards" / "shard-000001.done.json").exists()
    meta = json.loads((model / "meta.json").read_text())
    meta["version"] = "2.0.0"
    (model / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"the model was en_pipeline 0\.0\.0, now en_pipeline 2\.0\.0; "
                                         r"model files that differ: meta\.json, rnn_tagger/model\)"):
        annotate(model, inputs, tmp_path / "out", **options)


def test_without_ray_the_install_hint_comes_before_the_inputs_and_output_dir(pipeline, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(RuntimeError, match=r"pip install 'spacy-rnn\[ray\]'"):
        annotate(pipeline, tmp_path / "no_such_input", tmp_path / "out", engine="ray")
    write_inputs(tmp_path / "in")
    with pytest.raises(RuntimeError, match=r"pip install 'spacy-rnn\[ray\]'"):
        annotate(pipeline, tmp_path / "in", tmp_path / "out", engine="ray")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # about 30 s: two local Ray instances
def test_ray_actors_import_code_raise_max_length_and_reject_failing_docs(short_pipeline, custom_code, tmp_path):
    """And a pipeline that does not load in the actors gives one error line, as with --n-process."""
    pytest.importorskip("ray.data")
    import shutil

    inputs = tmp_path / "in"
    inputs.mkdir()
    long_text = " ".join(["eggs"] * 20)
    (inputs / "t.txt").write_text(f"I like ham .\n{long_text}\nEat BOOM ham !\n{long_text} {long_text}\n", encoding="utf8")
    nlp = spacy.load(short_pipeline)
    nlp.add_pipe("annotate_test_boom")
    nlp.to_disk(tmp_path / "model")
    command = [sys.executable, "-m", "spacy_rnn", "annotate", str(tmp_path / "model"), str(inputs)]
    options = ["--format", "jsonl", "--max-length", "150", "--shard-size", "2", "--code", str(custom_code)]
    subprocess.run(command + [str(tmp_path / "local")] + options, check=True, capture_output=True)
    result = subprocess.run(command + [str(tmp_path / "ray")] + options + ["--engine", "ray", "--workers", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr  # Ray 2.51 deprecates map_batches(concurrency=...)
    assert outputs_of(tmp_path / "ray") == outputs_of(tmp_path / "local")
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert (summary["outputs"], summary["rejects"]) == (2, 2)
    shutil.copytree(short_pipeline, tmp_path / "broken")
    (tmp_path / "broken" / "rnn_tagger" / "model").write_bytes(b"\x00" * 100)
    result = subprocess.run([sys.executable, "-m", "spacy_rnn", "annotate", str(tmp_path / "broken"), str(inputs),
                             str(tmp_path / "ray_broken"), "--engine", "ray", "--workers", "1", "--code", str(custom_code)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr


def test_a_pipeline_that_raises_on_every_doc_fails_the_command(boom_pipeline, tmp_path):
    """Every doc a reject because the pipeline raised on it exited 0 with '0 docs': a broken
    pipeline looked like a finished run. Some docs failing is a finished run with rejects."""
    inputs = tmp_path / "in.txt"
    inputs.write_text("BOOM one\nBOOM two\n", encoding="utf8")
    result = CliRunner().invoke(make_app(), ["annotate", str(boom_pipeline), str(inputs), str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "the pipeline raised on every one of the 2 docs it was given" in result.output
    inputs.write_text("BOOM one\nfine two\n", encoding="utf8")
    result = CliRunner().invoke(make_app(), ["annotate", str(boom_pipeline), str(inputs), str(tmp_path / "out2")])
    assert result.exit_code == 0, result.output
    assert "2 inputs = 1 docs + 1 rejects (1 the pipeline raised on)" in result.output


def test_a_resume_with_another_code_file_is_refused_and_an_output_dir_inside_the_model_resumes(
        code_pipeline, code_only, tmp_path):
    """run.json did not record --code: a resume with another implementation of the components
    mixed both in one output. And the model's hash took in the run's own files when OUTPUT_DIR was
    inside MODEL, so such a run was refused as 'another model' on every rerun."""
    import shutil

    inputs = write_inputs(tmp_path / "in")
    model = tmp_path / "model"
    shutil.copytree(code_pipeline, model)
    out = model / "annotations"
    args = ["annotate", str(model), str(inputs), str(out), "--format", "jsonl", "--max-length", "200", "--code"]
    first = CliRunner().invoke(make_app(), args + [str(code_only)])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(make_app(), args + [str(code_only)])
    assert again.exit_code == 0 and "already written" in again.output, again.output
    other = tmp_path / "other_code.py"
    other.write_text(code_only.read_text(encoding="utf8").replace("len(doc) > 3", "len(doc) > 1"), encoding="utf8")
    refused = CliRunner().invoke(make_app(), args + [str(other)])
    assert refused.exit_code == 1 and "different code" in refused.output, refused.output


def test_a_code_file_that_raises_on_import_is_one_error_line(pipeline, tmp_path):
    code = tmp_path / "broken.py"
    code.write_text("import no_such_module_here\n", encoding="utf8")
    inputs = write_inputs(tmp_path / "in")
    result = CliRunner().invoke(make_app(), ["annotate", str(pipeline), str(inputs), str(tmp_path / "out"), "--code", str(code)])
    assert result.exit_code == 1
    assert "importing it raised ModuleNotFoundError: No module named 'no_such_module_here'" in result.output
    assert not (tmp_path / "out").exists()
