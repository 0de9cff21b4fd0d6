"""The language-model commands' argument handling (train-lm, evaluate-lm,
generate): out-of-range options are usage errors naming the option, a
pipeline without an rnn_lm is one error line, and evaluate-lm reports a
missing file as that file's error. Run in this process (run_app_in_process),
where a crash raises instead of becoming an exit code."""
import json

import pytest
import spacy
import typer

import spacy_rnn.cli.lm as lm_cli
from spacy_rnn.cli.lm import make_app
from spacy_rnn.training.lm import LMConfig, stream_words, train_lm
from spacy_rnn.training.lm_pipeline import build_pipeline

from .conftest import run_app_in_process

SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog met on the mat"]
TINY = dict(depth=1, width=8, embed_width=8, batch_size=2, bptt=5, optimizer="adam", lr=0.01, clip=1.0,
            decay_start=100, plateau_factor=1.0, seed=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory, one_torch_thread):
    """A saved pipeline with a tiny rnn_lm (one epoch on a few sentences)."""
    words = stream_words([s.split() for s in SENTENCES] * 5)
    config = LMConfig(epochs=1, **TINY)
    model, vocab, _ = train_lm(words, words, config, progress=False, log=lambda s: None)
    path = tmp_path_factory.mktemp("lm") / "model"
    build_pipeline(model, vocab, config).to_disk(path)
    return path


@pytest.fixture(scope="module")
def no_lm_path(tmp_path_factory):
    """A saved pipeline without an rnn_lm."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    path = tmp_path_factory.mktemp("no_lm") / "model"
    nlp.to_disk(path)
    return path


@pytest.fixture
def corpus(tmp_path):
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("".join(f"{s}\n" for s in SENTENCES * 4))
    valid.write_text("the cat sat on the log\n")
    return train, valid


def run(*args):
    return run_app_in_process(make_app(), *args)


class Reached(Exception):
    """Raised by a stand-in for the library call: the command got past its argument checks."""


@pytest.fixture
def stand_ins(monkeypatch):
    """The library calls of the three commands replaced by one that records its arguments and
    raises Reached, so a test sees whether the options were accepted without training anything."""
    calls = []

    def reached(*args, **kwargs):
        calls.append((args, kwargs))
        raise Reached

    monkeypatch.setattr(lm_cli, "run_training", reached)
    monkeypatch.setattr(lm_cli, "evaluate_pipeline", reached)
    monkeypatch.setattr("spacy_rnn.pipeline.lm.generate", reached)
    return calls


@pytest.mark.parametrize("command", ["generate", "evaluate-lm"])
def test_a_pipeline_without_an_rnn_lm_is_one_error_line_naming_it(command, no_lm_path, corpus):
    args = [command, no_lm_path, *([corpus[1]] if command == "evaluate-lm" else ["--prompt", "hi"])]
    result = run(*args)  # before the fix: the ValueError propagated (a traceback on the command line)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {no_lm_path}: the pipeline has no rnn_lm component: ['sentencizer']"
    ]


def test_generate_refuses_an_infinite_temperature_with_one_error_line(lm_path):
    # --temperature's range lets inf through (nan it refuses); the sampler's ValueError was a traceback.
    result = run("generate", lm_path, "--temperature", "inf")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {lm_path}: temperature must be a finite number >= 0, got inf"]


def test_a_prompt_that_is_not_utf8_is_named_not_the_model(lm_path):
    # `--prompt $'the\xff'`: argv holds a lone surrogate; encoding it failed inside the pipeline,
    # reported as "error: MODEL: 'utf-8' codec can't encode character '\udcff'"
    result = run("generate", lm_path, "--prompt", "the\udcff")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: --prompt is not UTF-8 text: character 4 stands for a byte that UTF-8 has no character for"]


OUT_OF_RANGE = [
    ("train-lm", "--batch-size", "0"),
    ("train-lm", "--bptt", "0"),
    ("train-lm", "--epochs", "0"),
    ("train-lm", "--width", "0"),
    ("train-lm", "--embed-width", "0"),
    ("train-lm", "--depth", "0"),
    ("train-lm", "--depth", "5"),
    ("train-lm", "--embed-dropout", "-0.1"),
    ("train-lm", "--dropout", "1.5"),
    ("train-lm", "--output-dropout", "2"),
    ("train-lm", "--max-vocab", "1"),
    ("train-lm", "--max-vocab", "2"),
    ("train-lm", "--lr", "-1"),
    ("train-lm", "--clip", "-0.25"),
    ("train-lm", "--decay-start", "0"),
    ("train-lm", "--decay-factor", "-0.5"),
    ("train-lm", "--plateau-factor", "0.5"),
    ("train-lm", "--max-minutes", "-1"),
    ("train-lm", "--max-steps", "0"),
    ("train-lm", "--limit-tokens", "0"),
    ("train-lm", "--limit-tokens", "-5"),
    ("evaluate-lm", "--batch-size", "0"),
    ("evaluate-lm", "--batch-size", "-3"),
    ("evaluate-lm", "--bptt", "0"),
    ("generate", "--n-words", "-1"),
    ("generate", "--temperature", "-0.5"),
]


def command_args(command, lm_path, corpus, out):
    if command == "train-lm":
        return [command, *corpus, out, "--no-progress"]
    if command == "evaluate-lm":
        return [command, lm_path, corpus[1]]
    return [command, lm_path]


@pytest.mark.parametrize("command, option, value", OUT_OF_RANGE)
def test_an_out_of_range_option_is_a_usage_error_naming_it(command, option, value, lm_path, corpus, tmp_path, stand_ins):
    # Before the fix each of these reached the library: train-lm's --batch-size 0 ended in a
    # ZeroDivisionError, --bptt 0 in "range() arg 3 must not be zero", evaluate-lm's --bptt 0 was
    # reported as the file failing, its --batch-size 0 or -3 were read as 1.
    result = run(*command_args(command, lm_path, corpus, tmp_path / "out"), option, value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Invalid value for '{option}'" in result.stderr
    assert stand_ins == []


@pytest.mark.parametrize("command, options", [
    ("train-lm", ["--batch-size", "1", "--bptt", "1", "--epochs", "1", "--width", "1", "--embed-width", "1",
                  "--depth", "4", "--dropout", "1", "--embed-dropout", "0", "--max-vocab", "3", "--lr", "0",
                  "--clip", "0", "--decay-start", "1", "--decay-factor", "1", "--plateau-factor", "1",
                  "--max-minutes", "0", "--max-steps", "1", "--limit-tokens", "1", "--checkpoint-minutes", "-1",
                  "--seed", "-1"]),
    ("evaluate-lm", ["--batch-size", "1", "--bptt", "1"]),
    ("generate", ["--n-words", "0", "--temperature", "0", "--seed", "-1"]),
])
def test_the_bounds_themselves_are_accepted(command, options, lm_path, corpus, tmp_path, stand_ins):
    with pytest.raises(Reached):
        run(*command_args(command, lm_path, corpus, tmp_path / "out"), *options)
    assert len(stand_ins) == 1


def test_max_vocab_is_at_least_three_as_the_help_says_and_three_trains(corpus, tmp_path):
    result = run("train-lm", *corpus, tmp_path / "out1", "--max-vocab", "1")
    assert result.returncode == 2  # before the fix: trained a vocabulary of 2 words (over the maximum), exit 0
    assert "Invalid value for '--max-vocab'" in result.stderr and "greater than or equal to 3" in result.stderr
    assert not (tmp_path / "out1").exists()
    options = {param.name: param for param in typer.main.get_command(make_app()).commands["train-lm"].params}
    assert options["max_vocab"].help == "Vocabulary size, <unk> and <eos> included (so at least 3: they and one word)"
    # The least accepted value trains: <unk>, <eos> and the most frequent word.
    out = tmp_path / "out3"
    result = run("train-lm", *corpus, out, "--max-vocab", "3", "--epochs", "1", "--depth", "1", "--width", "4",
                 "--embed-width", "4", "--batch-size", "2", "--bptt", "5", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "training.json").read_text())["vocab_size"] == 3
    assert spacy.load(out / "model-best").get_pipe("rnn_lm").labels == ("<unk>", "<eos>", "the")


def test_evaluate_lm_reports_a_missing_file_as_its_own_error_and_evaluates_the_others(lm_path, tmp_path):
    good, missing, folder = tmp_path / "good.txt", tmp_path / "missing.txt", tmp_path / "folder"
    good.write_text("the cat sat on the mat\n")
    folder.mkdir()
    output = tmp_path / "results.json"
    # Before the fix: exit 2 for the missing file before anything was evaluated.
    result = run("evaluate-lm", lm_path, missing, good, folder, "--batch-size", "1", "--output", output)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{good}: perplexity ")
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith(f"{missing}: ") and "No such file or directory" in errors[0]
    assert errors[1].startswith(f"{folder}: ") and "Is a directory" in errors[1]
    assert errors[2] == "2 of 3 files failed"
    written = json.loads(output.read_text())
    assert list(written) == [str(missing), str(good), str(folder)]
    assert "No such file or directory" in written[str(missing)]["error"] and written[str(good)]["tokens"] == 6


@pytest.mark.parametrize("options, named", [
    (["--cell", "lsmt"], "lsmt"),
    (["--optimizer", "adamw"], "adamw"),
    (["--tie-weights", "--width", "8", "--embed-width", "4"], "tie"),
])
def test_train_lm_settings_that_do_not_go_together_are_one_error_line(corpus, tmp_path, options, named):
    """A bad --cell or --optimizer, or --tie-weights with two widths, ended in a ValueError traceback."""
    result = run("train-lm", *corpus, tmp_path / "out", *options, "--epochs", "1", "--no-progress")
    assert result.returncode == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert named in result.stderr
