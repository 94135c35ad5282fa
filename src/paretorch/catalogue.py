"""Everything a run can be told, in words: the methods with their options, the data sets, the models and
the keys of a run (``paretorch list`` and ``paretorch train --help`` print it)."""

from __future__ import annotations

import difflib
import shutil
import textwrap
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

__all__ = ["SECTIONS", "catalogue", "listing_width", "option_lines", "settings_text"]

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


# Where an option's meaning starts on its line, and the widths a listing is wrapped to (a terminal's, within these
# bounds; 100 columns through a pipe).
_MEANING_COLUMN = 35
_WIDTHS = (80, 120)


def listing_width() -> int:
    """The width ``paretorch list`` and ``train --help`` wrap to: the terminal's, within 80-120 columns."""
    columns = shutil.get_terminal_size((100, 24)).columns
    return min(max(columns, _WIDTHS[0]), _WIDTHS[1])


def _wrapped(first: str, text: str, column: int, width: int) -> list[str]:
    """``first`` padded to ``column``, then ``text`` wrapped to ``width`` with its continuation lines at
    ``column``."""
    head = first.ljust(column - 1) + " "
    return textwrap.wrap(text, width, initial_indent=head, subsequent_indent=" " * column,
                         break_on_hyphens=False) or [head.rstrip()]


def option_lines(options: Iterable[Option], indent: str = "  ", width: int | None = None, why: bool = False
                 ) -> list[str]:
    """Each option as ``name = default``, its meaning and when it applies, wrapped to ``width`` (default
    :func:`listing_width`); with ``why``, also what was measured to choose its default.

    >>> from paretorch.options import RUN_OPTIONS
    >>> option_lines([RUN_OPTIONS["epochs"]])[0].split()[:3]
    ['epochs', '=', '10']
    >>> all(len(line) <= 80 for line in option_lines(RUN_OPTIONS.values(), width=80))
    True
    """
    width = width or listing_width()
    lines = []
    for option in options:
        when = f" [{option.when}]" if option.when else ""
        lines += _wrapped(f"{indent}{option.name} = {_default(option)}", option.help + when, _MEANING_COLUMN, width)
        if why and option.why:
            lines += _wrapped("", "why: " + option.why, _MEANING_COLUMN + 2, width)
    return lines


def catalogue(section: str | None = None, why: bool = False) -> str:
    """The text of ``paretorch list``: all sections, one of :data:`SECTIONS`, or one method's page; ``why``
    adds what was measured to choose each default.

    >>> "why: " in catalogue("lorpman", why=True) and "why: " not in catalogue("lorpman")
    True
    """
    names = method_names()
    if section is not None and section not in (*SECTIONS, *names):
        close = difflib.get_close_matches(section, (*SECTIONS, *names), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParetorchError(f"unknown section {section!r}; {hint}choose one of {', '.join(SECTIONS)} or a method "
                             f"({', '.join(names)})")
    width = listing_width()
    parts: list[str] = []
    if section in (None, "methods", *names):
        if section not in names:
            parts += textwrap.wrap("methods (method=NAME; their own options below each, as key=value; paretorch list "
                                   "NAME --why: what each default was chosen on):", width)
        for name in names if section not in names else [section]:
            preset = get_method(name)
            kind = "one model per preference" if preset.discrete else "one steerable model"
            parts += textwrap.wrap(f"  {name}: {preset.summary} ({kind})", width, subsequent_indent=" " * 4)
            parts += option_lines(preset.options.values(), indent="    ", width=width, why=why)
            if preset.train_defaults:  # its own defaults for training keys, which a user's value overrides
                parts += _wrapped("    training keys it sets:", settings_text(preset.train_defaults), _MEANING_COLUMN,
                                  width)
    if section in (None, "datasets"):
        parts += textwrap.wrap("datasets (dataset=NAME; local ones read data_source=FOLDER, nothing is downloaded; "
                               "a new run takes the papers' protocol below for the keys it does not give):", width)
        for name in DATASET_TASKS:
            parts += _wrapped(f"  {name} ({DATASET_TASKS[name]} tasks)", DATASET_HELP[name], 29, width)
            if name in DATASET_PROTOCOLS:
                parts += _wrapped("", f"protocol: {settings_text(DATASET_PROTOCOLS[name])}", 29, width)
            for method, settings in METHOD_PROTOCOLS.get(name, {}).items():
                parts += _wrapped("", f"with {method}: {settings_text(settings)}", 29, width)
    if section in (None, "models"):
        parts.append("models (model=NAME):")
        for name, text in MODEL_HELP.items():
            parts += _wrapped(f"  {name}", text, 13, width)
    if section in (None, "keys"):
        parts.append("run keys (any method):")
        parts += option_lines(RUN_OPTIONS.values(), width=width, why=why)
        parts += textwrap.wrap("training keys (any method, where the condition in brackets holds; the preset sets "
                               "its own defaults, e.g. lr):", width)
        parts += option_lines(TRAIN_OPTIONS.values(), width=width, why=why)
    return "\n".join(parts)
