"""Every numeric setting of every registered architecture and factory declares
its valid range, and spaCy's config validation refuses a value outside it,
naming the setting."""
import inspect
import typing
from importlib.metadata import entry_points

import pytest
import spacy
from confection import ConfigValidationError
from spacy.util import registry

from spacy_rnn.models.types import FloatRange, IntRange

from .conftest import SMALL_ENCODER

ARCHITECTURES = sorted(ep.name for ep in entry_points(group="spacy_architectures") if ep.value.startswith("spacy_rnn"))
FACTORY_ENTRY_POINTS = {ep.name: ep for ep in entry_points(group="spacy_factories") if ep.value.startswith("spacy_rnn")}
FACTORIES = sorted(FACTORY_ENTRY_POINTS)
SPACY_ARGS = {"nlp", "name", "model", "scorer"}


def is_range(annotation) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "validate") and hasattr(annotation, "low")


def unwrap(annotation):
    """(range type, wrap) for a range, List[range] or Optional[range]; else (None, None)."""
    if is_range(annotation):
        return annotation, lambda v: v
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, typing.List) and args and is_range(args[0]):
        return args[0], lambda v: [v]
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and is_range(inner[0]):
            return inner[0], lambda v: v
    return None, None


def bad_values(kind):
    """Values just outside the range."""
    values = []
    step = 1 if issubclass(kind, int) else 0.5
    if kind.low is not None:
        values.append(kind.low if kind.low_open else kind.low - step)
    if kind.high is not None:
        values.append(kind.high if kind.high_open else kind.high + step)
    return values


def settings(function):
    for name, param in inspect.signature(function).parameters.items():
        if name not in SPACY_ARGS:
            yield name, param.annotation


CASES = [("architecture", name) for name in ARCHITECTURES] + [("factory", name) for name in FACTORIES]


def function_of(kind, name):
    if kind == "architecture":
        return registry.architectures.get(name)
    return FACTORY_ENTRY_POINTS[name].load()


@pytest.mark.parametrize("kind,name", CASES)
def test_every_numeric_setting_declares_its_range(kind, name):
    for setting, annotation in settings(function_of(kind, name)):
        plain = {int, float, typing.Optional[int], typing.Optional[float], typing.List[int], typing.List[float]}
        assert annotation not in plain, f"{name}: setting '{setting}' is a bare {annotation}; declare its range"


def out_of_range_cases():
    for kind, name in CASES:
        for setting, annotation in settings(function_of(kind, name)):
            range_type, wrap = unwrap(annotation)
            if range_type is None:
                continue
            for value in bad_values(range_type):
                yield pytest.param(kind, name, setting, wrap(value), id=f"{name}-{setting}-{value}")


@pytest.mark.parametrize("kind,name,setting,value", list(out_of_range_cases()))
def test_out_of_range_values_are_refused(kind, name, setting, value):
    with pytest.raises(ConfigValidationError) as info:
        if kind == "architecture":
            config = {"@architectures": name, setting: value}
            if "encoder" in inspect.signature(registry.architectures.get(name)).parameters:
                config["encoder"] = SMALL_ENCODER
            registry.resolve({"model": config})
        else:
            spacy.blank("en").add_pipe(name, config={setting: value})
    assert f"-> {setting}\t" in str(info.value), str(info.value)


def test_the_walk_covers_the_settings_the_issue_names():
    names = {(case.values[1], case.values[2]) for case in out_of_range_cases()}
    for setting in ("width", "dropout", "word_width", "n_chars", "rows", "max_word_chars", "word_dropout", "char_filters"):
        assert ("spacy_rnn.RNNEncoder.v2", setting) in names, setting
    assert ("spacy_rnn.RNNLanguageModel.v1", "vocab_size") in names


def test_range_types_describe_themselves():
    assert str(IntRange(1, 4)) == "an int from 1 to 4"
    assert str(FloatRange(0.0, 1.0, high_open=True)) == "a number >= 0.0 and < 1.0"
    assert IntRange(1).validate(3) == 3
    with pytest.raises(TypeError):
        IntRange(1).validate(True)
