"""Which of the user's layers a parameterisation wraps, and how a wrapped layer takes its place.

``targets`` and ``exclude`` follow PEFT's ``target_modules``: ``None`` (every supported layer), a regular
expression that must match the whole name, or a list of names / name suffixes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from paretorch.errors import ParetorchError

__all__ = ["Targets", "check_num_tasks", "has_layers_outside", "replace_module", "select_layers", "task_heads",
           "with_excluded"]

Targets = str | Sequence[str] | None


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` of ``root`` was."""
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def _matches(name: str, targets: Targets) -> bool:
    if targets is None:
        return True
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == target or name.endswith("." + target) for target in targets)


def _excluded(name: str, exclude: Targets) -> bool:
    # Excluding a container excludes everything inside it.
    if exclude is None:
        return False
    parts = name.split(".")
    return any(_matches(".".join(parts[:end]), exclude) for end in range(1, len(parts) + 1))


def select_layers(model: nn.Module, supported: tuple[type[nn.Module], ...], targets: Targets,
                  exclude: Targets, method: str) -> list[str]:
    """Names of the layers to wrap. ``targets``: ``None`` (every supported layer), a regular expression that
    must match the whole name, or a list of names / name suffixes (PEFT's ``target_modules``). A targeted
    container stands for its supported descendants; a targeted leaf of an unsupported type is an error."""
    chosen: list[str] = []
    for name, module in model.named_modules():
        if not name or not _matches(name, targets) or _excluded(name, exclude):
            continue
        if isinstance(module, supported):
            chosen.append(name)
        elif targets is not None and not any(True for _ in module.children()):
            if any(True for _ in module.parameters(recurse=False)):
                kinds = ", ".join(kind.__name__ for kind in supported)
                raise ParetorchError(
                    f"layer {name!r} is a {type(module).__name__}, which {method} does not support; "
                    f"target only {kinds} layers"
                )
        elif targets is not None:
            chosen += [f"{name}.{child}" for child, sub in module.named_modules()
                       if child and isinstance(sub, supported) and not _excluded(f"{name}.{child}", exclude)]
    unique = _outermost(model, list(dict.fromkeys(chosen)), targets)
    if not unique:
        raise ParetorchError(
            f"targets {targets!r} matched no supported layer; names look like "
            f"{[n for n, _ in model.named_modules() if n][:5]}"
        )
    return unique


def _outermost(model: nn.Module, names: list[str], targets: Targets) -> list[str]:
    # A wrapped module takes its whole subtree (a wrapped attention module its projections): keep only the
    # outermost of nested choices. The projection layers of an nn.MultiheadAttention are never wrapped alone,
    # because the attention reads their weights directly instead of calling them.
    attention = [name for name, module in model.named_modules() if isinstance(module, nn.MultiheadAttention)]
    kept: list[str] = []
    for name in names:
        if any(name.startswith(outer + ".") for outer in kept):
            continue
        owner = next((outer for outer in attention if name.startswith(outer + ".")), None)
        if owner is not None:
            if targets is not None and _matches(name, targets) and not _matches(owner, targets):
                raise ParetorchError(f"layer {name!r} belongs to the attention module {owner!r}, which reads its "
                                     f"weights directly; target {owner!r} instead (its projections are wrapped "
                                     "together)")
            continue
        kept.append(name)
    return kept


def check_num_tasks(num_tasks: int) -> None:
    """Refuse a task count below 2 (a front needs at least two tasks)."""
    if not isinstance(num_tasks, int) or num_tasks < 2:
        raise ParetorchError(f"num_tasks must be an integer >= 2, got {num_tasks!r}")


def task_heads(model: nn.Module, num_tasks: int) -> list[str]:
    """The names of ``model``'s task heads: each ``nn.ModuleList`` or ``nn.ModuleDict`` called ``heads`` (at any
    depth) that holds one module per task, the layout of paretorch's built-in models. Nothing else is guessed: a
    list of ``num_tasks`` encoder blocks is no set of heads, so a model whose heads go by another name gets none
    (name them with ``exclude``).

    >>> from torch import nn
    >>> net = nn.Module()
    >>> net.encoder = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
    >>> net.heads = nn.ModuleDict({"digit": nn.Linear(4, 10), "parity": nn.Linear(4, 2)})
    >>> task_heads(net, 2), task_heads(net, 3)
    (['heads'], [])
    """
    return [name for name, module in model.named_modules()
            if name.rpartition(".")[2] == "heads" and isinstance(module, (nn.ModuleList, nn.ModuleDict))
            and len(module) == num_tasks]


def with_excluded(exclude: Targets, names: Sequence[str]) -> Targets:
    """``exclude`` with ``names`` left out as well (a regular expression stays one, a list grows).

    >>> with_excluded(None, ["heads"]), with_excluded(["embed"], ["heads"]), with_excluded("emb.*", ["heads"])
    (['heads'], ['embed', 'heads'], '(?:emb.*)|(?:heads)')
    """
    if not names:
        return exclude
    if exclude is None:
        return list(names)
    if isinstance(exclude, str):
        return "|".join(f"(?:{pattern})" for pattern in (exclude, *(re.escape(name) for name in names)))
    return [*exclude, *names]


def has_layers_outside(model: nn.Module, supported: tuple[type[nn.Module], ...], names: Sequence[str]) -> bool:
    """Whether ``model`` has a layer of a ``supported`` type outside the submodules ``names``."""
    return any(isinstance(module, supported) and not _excluded(name, names) for name, module in model.named_modules())
