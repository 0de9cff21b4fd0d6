import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import spacy
from spacy.pipeline import TrainablePipe
from spacy.util import registry

ARCHITECTURES = sorted(ep.name for ep in entry_points(group="spacy_architectures") if ep.value.startswith("spacy_rnn"))
FACTORIES = sorted(ep.name for ep in entry_points(group="spacy_factories") if ep.value.startswith("spacy_rnn"))


def test_entry_points_are_installed():
    assert "spacy_rnn.RNNTagger.v1" in ARCHITECTURES
    assert "rnn_tagger" in FACTORIES


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_resolves(name):
    assert callable(registry.architectures.get(name))


# Run in a fresh interpreter, where nothing has imported spacy_rnn: spaCy must
# find the factories through their entry points alone, as in a user's
# `spacy.blank("en").add_pipe("rnn_tagger")` or a config naming the factory.
# After the first factory the package is imported; for every factory the
# function registered under its name must be the one its entry point names.
RESOLVE_IN_FRESH_PROCESS = """
import json, sys
from importlib.metadata import entry_points
import spacy
from spacy.util import registry

results = {}
for name in sys.argv[1:]:
    imported_before = sorted(m for m in sys.modules if m.split(".")[0] == "spacy_rnn")
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(name)
    (entry_point,) = [ep for ep in entry_points(group="spacy_factories") if ep.name == name]
    results[name] = {
        "imported_before": imported_before,
        "class": type(pipe).__module__ + "." + type(pipe).__qualname__,
        "pipe_name": pipe.name,
        "factory_is_the_entry_point": registry.factories.get(name) is entry_point.load(),
    }
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def resolved_in_a_fresh_process():
    result = subprocess.run(
        [sys.executable, "-c", RESOLVE_IN_FRESH_PROCESS, *FACTORIES],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_first_factory_resolves_with_spacy_rnn_not_imported(resolved_in_a_fresh_process):
    assert resolved_in_a_fresh_process[FACTORIES[0]]["imported_before"] == []


@pytest.mark.parametrize("name", FACTORIES)
def test_factory_resolves_through_its_entry_point(name, resolved_in_a_fresh_process):
    got = resolved_in_a_fresh_process[name]
    assert got["factory_is_the_entry_point"]
    assert got["pipe_name"] == name
    # The same component class as a process that imported spacy_rnn gets.
    pipe = spacy.blank("en").add_pipe(name)
    assert got["class"] == f"{type(pipe).__module__}.{type(pipe).__qualname__}"
    assert got["class"].startswith("spacy_rnn.")
    assert isinstance(pipe, TrainablePipe)


def test_spacy_package_lists_spacy_rnn_as_requirement():
    from spacy.cli.package import get_third_party_dependencies

    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_tagger")
    assert any(req.startswith("spacy-rnn") for req in get_third_party_dependencies(nlp.config))


def test_each_command_summarizes_itself_in_one_line():
    """`python -m spacy_rnn --help` lists each command by its docstring's first paragraph, line
    breaks kept: a one-line first paragraph keeps the listing one line per command."""
    from spacy_rnn.cli import make_app

    commands = make_app().registered_commands
    assert {c.name for c in commands} >= {"train-lm", "evaluate-lm", "generate", "annotate", "quantize"}
    for command in commands:
        summary = command.callback.__doc__.strip().split("\n\n")[0]
        assert "\n" not in summary, command.name
