"""Reload a steerable model saved with :meth:`ParetoModel.save_pretrained` around a fresh copy of the user's model.

The saved config names the parameterisation, its options and the exact layers it wrapped; the same
parameterisation is applied to ``base_model`` (only those layers) and every tensor is loaded from the
safetensors file, so the reloaded model computes what the saved one did, for every preference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from paretorch._files import read_json
from paretorch.errors import ParetorchError
from paretorch.parameterisations._conditioned import conditioned, film
from paretorch.parameterisations._ensemble import ensemble
from paretorch.parameterisations._hyper import hypernetwork
from paretorch.parameterisations._lowrank import lowrank
from paretorch.parameterisations._model import PRETRAINED_CONFIG, PRETRAINED_WEIGHTS, ParetoModel, plain

__all__ = ["from_pretrained"]


def _exactly(names: list[str]) -> str:
    # A regular expression that selects exactly these layers (targets are matched against whole names).
    return "|".join(re.escape(name) for name in names)


# How each built-in parameterisation is rebuilt from its saved config and wrapped layers.
_REBUILD: dict[str, Callable[[nn.Module, int, dict[str, Any], list[str]], ParetoModel]] = {
    # Saves from before conv_layout existed used PEFT's layout.
    "lowrank": lambda model, tasks, c, names: lowrank(model, tasks, rank=c["rank"], scale=c["scale"],
                                                      scaling=c["scaling"], targets=_exactly(names),
                                                      conv_layout=c.get("conv_layout", "peft")),
    "ensemble": lambda model, tasks, c, names: ensemble(model, tasks, targets=_exactly(names),
                                                        batchnorm=c["batchnorm"],
                                                        independent_init=c["independent_init"]),
    "film": lambda model, tasks, c, names: film(model, tasks, targets=_exactly(names)),
    "conditioned": lambda model, tasks, c, names: conditioned(model, tasks, target=c["target"]),
    "hypernetwork": lambda model, tasks, c, names: hypernetwork(model, tasks, hidden=c["hidden"], layers=c["layers"],
                                                                chunk_size=c["chunk_size"],
                                                                chunk_embedding=c["chunk_embedding"],
                                                                # saves from before the residual form: without it
                                                                residual=c.get("residual", False),
                                                                residual_step=c.get("residual_step", 0.1)),
    "plain": lambda model, tasks, c, names: plain(model, tasks),
}


def from_pretrained(directory: str | os.PathLike[str], base_model: nn.Module,
                    build: Callable[[nn.Module, int], ParetoModel] | None = None) -> ParetoModel:
    """The steerable model saved in ``directory``, rebuilt around ``base_model`` (a fresh instance of the class it
    was trained from; its weights are replaced by the saved ones).

    ``build(base_model, num_tasks)`` rebuilds a parameterisation that is not built in (one made with
    :func:`~paretorch.parameterisations.wrap` and your own layers).

    >>> import tempfile, torch
    >>> from paretorch import lowrank
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> pm = lowrank(net, 2, rank=2)
    >>> folder = tempfile.mkdtemp()
    >>> _ = pm.save_pretrained(folder)
    >>> again = from_pretrained(folder, torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
    ...                                                     torch.nn.Linear(8, 2)))
    >>> x = torch.randn(3, 4)
    >>> torch.equal(again(x, [0.3, 0.7]), pm(x, [0.3, 0.7]))
    True
    """
    try:
        from safetensors.torch import load_file
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ParetorchError("loading needs safetensors: pip install 'paretorch[export]'") from error
    folder = Path(directory)
    config = read_json(folder / PRETRAINED_CONFIG, "paretorch pretrained config")
    if not isinstance(config, dict) or config.get("format") != "paretorch-pretrained":
        raise ParetorchError(f"{folder / PRETRAINED_CONFIG} is not a paretorch save_pretrained config; save one with "
                             "pm.save_pretrained(folder)")
    kind = config["config"].get("method")
    if build is not None:
        pm = build(base_model, int(config["num_tasks"]))
    elif kind in _REBUILD:
        try:
            pm = _REBUILD[kind](base_model, int(config["num_tasks"]), config["config"], list(config["layer_names"]))
        except ParetorchError as error:
            raise ParetorchError(f"{type(base_model).__name__} does not have the layers the saved model wrapped "
                                 f"({config['layer_names'][:3]}…); give an instance of the class it was trained "
                                 "from") from error
    else:
        raise ParetorchError(f"{folder} holds a {kind!r} model, which paretorch cannot rebuild by itself; pass "
                             "build=lambda model, num_tasks: <the call that wrapped it>")
    pm.task_names = config.get("task_names")
    if pm.layer_names != config["layer_names"]:
        raise ParetorchError(f"{type(base_model).__name__} does not have the layers the saved model wrapped "
                             f"({config['layer_names'][:3]}…); give an instance of the class it was trained from")
    weights = folder / PRETRAINED_WEIGHTS
    if not weights.exists():
        raise ParetorchError(f"{weights} is missing; the folder holds a config without its weights")
    try:
        state = load_file(str(weights))
        pm.load_state_dict(state)
    except Exception as error:  # safetensors raises its own error types for damaged files
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ParetorchError(f"cannot load {weights} into this model ({first}); is it the model class it was "
                             "saved from, and is the file intact?") from error
    return pm
