"""Everything a run can be told, in words: the methods with their options, the data sets, the models and
the keys of a run (``paretorch list`` and ``paretorch train --help`` print it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from paretorch.errors import ParetorchError
from paretorch.methods import get_method, method_names
from paretorch.options import (
    DATASET_HELP,
    DATASET_PROTOCOLS,
    DATASET_TASKS,
    METHOD_PROTOCOLS,
    MODEL_HELP,
    RUN_OPTIONS,
    TRAIN_OPTIONS,
    Option,
)

__all__ = ["SECTIONS", "catalogue", "option_lines", "settings_text"]

SECTIONS = ("methods", "datasets", "models", "keys")


def _value(value: object, quote: bool = True) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value) if quote else value
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_text(settings: Mapping[str, object], quote: bool = True) -> str:
    """``key=value`` pairs as the listing shows them; ``quote=False``: as a user types them on the command line.

    >>> settings_text({"lr": 0.0001, "schedule": "step", "gradient_balancing": True}, quote=False)
    'lr=0.0001 schedule=step gradient_balancing=true'
    """
    return " ".join(f"{key}={_value(value, quote)}" for key, value in settings.items())


def _default(option: Option) -> str:
    return _value(option.default)


def option_lines(options: Iterable[Option], indent: str = "  ") -> list[str]:
    """One line per option: ``name = default``, its meaning, and when it applies.

    >>> from paretorch.options import RUN_OPTIONS
    >>> option_lines([RUN_OPTIONS["epochs"]])[0].split()[:3]
    ['epochs', '=', '10']
    """
    lines = []
    for option in options:
        when = f" [{option.when}]" if option.when else ""
        lines.append(f"{indent}{option.name} = {_default(option)}".ljust(34) + f" {option.help}{when}")
    return lines


def catalogue(section: str | None = None) -> str:
    """The text of ``paretorch list`` (all sections, or one of :data:`SECTIONS`)."""
    if section is not None and section not in SECTIONS:
        raise ParetorchError(f"unknown section {section!r}; choose one of {', '.join(SECTIONS)}")
    parts: list[str] = []
    if section in (None, "methods"):
        parts.append("methods (method=NAME; their own options below each, as key=value):")
        for name in method_names():
            preset = get_method(name)
            kind = "one model per preference" if preset.discrete else "one steerable model"
            parts.append(f"  {name}: {preset.summary} ({kind})")
            parts += option_lines(preset.options.values(), indent="    ")
    if section in (None, "datasets"):
        parts.append("datasets (dataset=NAME; local ones read data_source=FOLDER, nothing is downloaded; a new run "
                     "takes the papers' protocol below for the keys it does not give):")
        for name in DATASET_TASKS:
            parts.append(f"  {name} ({DATASET_TASKS[name]} tasks)".ljust(28) + f" {DATASET_HELP[name]}")
            if name in DATASET_PROTOCOLS:
                parts.append(" " * 29 + f"protocol: {settings_text(DATASET_PROTOCOLS[name])}")
            for method, settings in METHOD_PROTOCOLS.get(name, {}).items():
                parts.append(" " * 29 + f"with {method}: {settings_text(settings)}")
    if section in (None, "models"):
        parts.append("models (model=NAME):")
        parts += [f"  {name}".ljust(12) + f" {text}" for name, text in MODEL_HELP.items()]
    if section in (None, "keys"):
        parts.append("run keys (any method):")
        parts += option_lines(RUN_OPTIONS.values())
        parts.append("training keys (any method, where the condition in brackets holds; the preset sets its own "
                     "defaults, e.g. lr):")
        parts += option_lines(TRAIN_OPTIONS.values())
    return "\n".join(parts)
