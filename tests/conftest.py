import subprocess
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

# Tiny inline training data: (words, PTB tags, UPOS tags).
TRAIN_DATA = [
    (
        ["I", "like", "green", "eggs", "."],
        ["PRP", "VBP", "JJ", "NNS", "."],
        ["PRON", "VERB", "ADJ", "NOUN", "PUNCT"],
    ),
    (
        ["Eat", "blue", "ham", "today", "!"],
        ["VB", "JJ", "NN", "NN", "."],
        ["VERB", "ADJ", "NOUN", "NOUN", "PUNCT"],
    ),
    (
        ["The", "dog", "runs", "fast"],
        ["DT", "NN", "VBZ", "RB"],
        ["DET", "NOUN", "VERB", "ADV"],
    ),
]

# A tiny spacy_rnn.RNNEncoder.v1 for tests that train on TRAIN_DATA-sized data.
SMALL_ENCODER = {
    "@architectures": "spacy_rnn.RNNEncoder.v1",
    "cell": "lstm",
    "width": 16,
    "depth": 1,
    "dropout": 0.0,
    "word_dropout": 0.0,
    "vocab_size": 100,
    "min_word_freq": 1,
    "word_width": 16,
    "rows": [100, 200, 50],
    "embed_widths": [4, 8, 4],
    "char_width": 8,
    "char_filters": 8,
}


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="also run slow tests")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow tests, run only with --slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip_slow = pytest.mark.skip(reason="needs --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def make_examples(nlp, data=TRAIN_DATA):
    examples = []
    for words, tags, pos in data:
        doc = Doc(nlp.vocab, words=words)
        examples.append(Example.from_dict(doc, {"words": words, "tags": tags, "pos": pos}))
    return examples


@pytest.fixture
def tiny_corpus(tmp_path):
    """train.spacy and dev.spacy made from TRAIN_DATA."""
    nlp = spacy.blank("en")
    db = DocBin()
    for words, tags, pos in TRAIN_DATA:
        # Entities for NER configs: every NN/NNS word is a one-token FOOD entity.
        ents = ["B-FOOD" if tag.startswith("NN") else "O" for tag in tags]
        doc = Doc(nlp.vocab, words=words, tags=tags, pos=pos, ents=ents)
        # Categories for textcat configs: does the sentence end in "!"?
        doc.cats = {"EXCLAIM": float(words[-1] == "!"), "OTHER": float(words[-1] != "!")}
        db.add(doc)
    train = tmp_path / "train.spacy"
    dev = tmp_path / "dev.spacy"
    db.to_disk(train)
    db.to_disk(dev)
    return train, dev


@pytest.fixture
def docs():
    """Docs of mixed lengths, including an empty one."""
    nlp = spacy.blank("en")
    texts = ["I like green eggs.", "", "Eat", "The dog runs fast and the cat sleeps all day long ."]
    return [nlp.make_doc(text) for text in texts]


def run_script_in_process(script, *args) -> subprocess.CompletedProcess:
    """A typer script's command line (`python script args`) run in this
    process, through typer's CliRunner: exit code, stdout and stderr as a
    CompletedProcess. Without the new interpreter's start-up (importing spaCy
    and torch: about 4 s here) it is what keeps the default test run short;
    each script still has one test that runs it in a new process."""
    import importlib.util

    import typer

    spec = importlib.util.spec_from_file_location(Path(script).stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = getattr(module, "app", None)
    if app is None:  # a script run by typer.run(main)
        app = typer.Typer(add_completion=False)
        app.command()(module.main)
    return run_app_in_process(app, *args)


def run_app_in_process(app, *args) -> subprocess.CompletedProcess:
    """A typer app's command line run in this process: exit code, stdout and stderr."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash is not an exit code
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Recurrent layers step through time; on a busy 2-core machine torch's intra-op threads only
    add waiting, so tests that run torch modules use one (as nlp.pipe workers do): a test module
    takes it with pytestmark = pytest.mark.usefixtures("one_torch_thread")."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spy_optimizer():
    """An SGD step that records each gradient's absolute sum by its key (spaCy's nlp.rehearse reads
    learn_rate, b1 and b2 off the optimizer it is given)."""
    sums = {}

    def step(key, weights, gradient):
        sums[key] = float(numpy.abs(gradient).sum())
        weights -= 0.001 * gradient
        return weights, gradient

    step.learn_rate, step.b1, step.b2, step.sums = 0.001, 0.9, 0.999, sums
    return step
