"""Types of the registered architectures' settings: what a setting may be is
declared in the builder's signature, so that spaCy's config validation reports
a bad value with the config section and the setting's name, as it does for
spaCy's own architectures, e.g.

    components.tagger.model.encoder -> depth   at root: 7 is not an int from 1 to 4

confection (spaCy's config system) checks a setting's value against its
annotation; a class with a pydantic-v1 style `__get_validators__` hook is
checked by calling its validators, which is how the ranges below are enforced.
"""
from typing import List, Literal, Optional

from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

Cell = Literal["rnn", "lstm", "gru", "mingru", "minlstm"]
TokenAttr = Literal["tag", "pos"]
Pooling = Literal["mean", "max", "last", "attention", "conv"]
DocEncoder = Model[List[Doc], List[Floats2d]]


class _RangeMeta(type):
    def __str__(cls) -> str:
        return cls.description  # type: ignore[attr-defined]

    __repr__ = __str__


def _range_type(base: type, low, high, low_open: bool, high_open: bool) -> type:
    kind = "an int" if base is int else "a number"
    if low is not None and high is not None and not (low_open or high_open):
        description = f"{kind} from {low} to {high}"
    else:
        bounds = [f"{'>' if low_open else '>='} {low}" if low is not None else "",
                  f"{'<' if high_open else '<='} {high}" if high is not None else ""]
        description = f"{kind} {' and '.join(b for b in bounds if b)}"

    def validate(value):
        if isinstance(value, bool) or not isinstance(value, (int, float) if base is float else int):
            raise TypeError(f"expected {description}")
        if low is not None and (value <= low if low_open else value < low):
            raise ValueError(f"expected {description}")
        if high is not None and (value >= high if high_open else value > high):
            raise ValueError(f"expected {description}")
        return value

    def get_validators(cls):
        yield validate

    return _RangeMeta(
        f"{base.__name__.capitalize()}Range",
        (base,),
        {
            "description": description, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "__get_validators__": classmethod(get_validators), "validate": staticmethod(validate),
        },
    )


def IntRange(low: Optional[int] = None, high: Optional[int] = None) -> type:
    """An int from low to high, both included (None: unbounded)."""
    return _range_type(int, low, high, False, False)


def FloatRange(low: Optional[float] = None, high: Optional[float] = None, *, high_open: bool = False) -> type:
    """A number from low (included) to high (excluded if high_open)."""
    return _range_type(float, low, high, False, high_open)


Positive = IntRange(1)
NonNegative = IntRange(0)
Depth = IntRange(1, 4)
NonNegativeFloat = FloatRange(0.0)
Probability = FloatRange(0.0, 1.0, high_open=True)  # a dropout rate: 1.0 would drop everything
Threshold = FloatRange(0.0, 1.0)  # a probability threshold: 1.0 included (spacy find-threshold tries it)
