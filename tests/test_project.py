"""The project workflows end to end on the real corpora (slow: run with --slow)."""
import shutil
from pathlib import Path

import pytest
import spacy
from spacy.cli.project.run import project_run

from .conftest import SMALL_ENCODER, make_examples

REPO = Path(__file__).parent.parent
DATA = (REPO.parent / "shared" / "data").resolve()


def copy_project(root: Path) -> Path:
    """The project files (not the package, which is installed) in a fresh folder."""
    root.mkdir()
    for name in ("project.yml", "configs", "scripts"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    return root


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "ud_english_ewt").exists(), reason="needs ../shared/data")
def test_tagger_workflow_smoke(tmp_path):
    root = copy_project(tmp_path / "project")
    overrides = {"vars.data_dir": str(DATA), "vars.tagger_steps": 20, "vars.ner_steps": 20}
    project_run(root, "tagger", overrides=overrides)
    assert (root / "metrics" / "tagger.json").exists()
    assert (root / "training" / "tagger" / "model-best").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "conll2003").exists(), reason="needs ../shared/data")
def test_ner_workflow_smoke(tmp_path):
    root = copy_project(tmp_path / "project")
    overrides = {"vars.data_dir": str(DATA), "vars.tagger_steps": 20, "vars.ner_steps": 20}
    project_run(root, "ner", overrides=overrides)
    for name in ("ner_conll2003_valid.json", "ner_uner_dev.json", "ner_uner_test.json"):
        assert (root / "metrics" / name).exists()
    assert "<mark" in (root / "ner_samples.html").read_text()


def test_every_dependency_and_output_is_one_path():
    """weasel joins two list items that are each one whole ${vars...} into one "a, b" string; a
    command's deps would then name a file that never exists and `spacy project run` stops."""
    from weasel.util import load_project_config

    config = load_project_config(REPO)
    paths = [(command["name"], path) for command in config["commands"]
             for path in command.get("deps", []) + command.get("outputs", [])]
    assert paths
    assert [(name, path) for name, path in paths if ", " in path] == []
    sst2 = next(command for command in config["commands"] if command["name"] == "train-textcat-sst2")
    assert "corpus/sst2_phrases/train.spacy" in sst2["deps"]


def test_package_command_makes_its_output_folder(tmp_path):
    """`spacy package` wants its output folder to exist; the project creates it (directories)."""
    root = copy_project(tmp_path / "project")
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": SMALL_ENCODER}})
    nlp.initialize(lambda: make_examples(nlp))
    (root / "training" / "tagger").mkdir(parents=True)
    nlp.to_disk(root / "training" / "tagger" / "model-best")
    project_run(root, "package")
    sdist = root / "packages" / "en_rnn_tagger_ewt-0.1.0" / "dist" / "en_rnn_tagger_ewt-0.1.0.tar.gz"
    assert sdist.exists()


def test_benchmark_command_trains_the_shipped_configs_as_shipped():
    """The workflow's tagger benchmark ("the shipped configs") names rows that train each shipped
    config without overrides (it named the minGRU rows trained in float32, not as shipped)."""
    import importlib.util
    import shlex
    import sys

    from weasel.util import load_project_config

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location("benchmark_tagger", REPO / "scripts" / "benchmark_tagger.py")
        benchmark_tagger = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(benchmark_tagger)
    finally:
        sys.path.remove(str(REPO / "scripts"))
    config = load_project_config(REPO)
    (command,) = [c for c in config["commands"] if c["name"] == "benchmark"]
    words = shlex.split(command["script"][0])
    names = words[words.index("--systems") + 1].split(",")
    systems = {system.name: system for system in benchmark_tagger.SYSTEMS}
    trained = [systems[name] for name in names if systems[name].int8_of is None and systems[name].name != "spacy_cnn"]
    assert {system.config for system in trained} == {"configs/tagger.cfg", "configs/tagger_mingru.cfg", "configs/tagger_mingru_fast.cfg"}
    assert [system.name for system in trained if system.overrides] == []
    assert all(systems[name].int8_of in names for name in names if systems[name].int8_of)
