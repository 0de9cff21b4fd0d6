"""Errors in a model's settings that name what the user can fix: the
component, the config file and the setting.

spaCy builds a component's model from its config before the component's
factory runs, so an architecture function cannot be told which component it
is building or which file the settings came from. `where_from` finds both
on the call stack: the `name` spaCy's `Language.create_pipe` is creating,
and the `config_path` of `spacy.load` / `spacy train` / `spacy evaluate`.
Either may be missing (a model built by hand); the message then says less.
"""
import sys
from pathlib import Path
from typing import Optional, Tuple

import spacy

_SPACY_DIR = str(Path(spacy.__file__).parent)


def _in_spacy(filename: str) -> bool:
    return filename.startswith(_SPACY_DIR)


def where_from() -> Tuple[Optional[str], Optional[Path]]:
    """(component name, config file) of the spaCy call that is building a
    model right now, as far as the call stack tells."""
    component: Optional[str] = None
    config_path: Optional[Path] = None
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if _in_spacy(code.co_filename):
            local = frame.f_locals
            if component is None and code.co_name == "create_pipe" and isinstance(local.get("name"), str):
                component = local["name"]
            if config_path is None and isinstance(local.get("config_path"), (str, Path)):
                if str(local["config_path"]) != "-":
                    config_path = Path(local["config_path"])
        frame = frame.f_back
    return component, config_path


class SettingError(ValueError):
    """A setting of a spacy_rnn architecture has a value it cannot use."""


def setting_error(architecture: str, setting: str, problem: str) -> SettingError:
    """The error to raise for a bad setting: `problem` says what is wrong
    and what to choose; the message adds the component and the file."""
    component, config_path = where_from()
    where = []
    if component is not None:
        where.append(f"component '{component}'")
    if config_path is not None:
        where.append(f"config {config_path}")
    prefix = f"[{', '.join(where)}] " if where else ""
    return SettingError(f"{prefix}{architecture} setting '{setting}': {problem}")
