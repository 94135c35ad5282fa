"""Parameterisations θ(λ): how a preference becomes the weights of the user's network.

- :func:`ensemble` — PaMaL: T full copies of each targeted layer, θ(λ) = Σ λ_t θ_t.
- :func:`lowrank` — PaLoRA / LORPMAN: base weights plus one low-rank delta per task.

Both deep-copy the user's model (the original is never mutated) and return a :class:`ParetoModel`.

**Default targets.** Every Linear and Conv1d/2d/3d layer, task heads included, as PaMaL's and PaLoRA's
public code do (they walk all children). LORPMAN's paper adapts only the shared bottom; pass
``exclude=["heads"]`` (or whatever your heads are called) or explicit ``targets`` for that.

**BatchNorm policy.** Running statistics are always shared by all preferences: during training they average
over the preferences seen, which matches no single trade-off exactly. For a model at one trade-off, refit
them with :func:`recalibrate_batchnorm` on a few training batches (``recalibrate_batchnorm(pm.at(λ),
loader)``): it returns the plain model with statistics of that preference. Affine parameters are shared for
``lowrank`` (they belong to the base network) and, for ``ensemble``, shared by default or given T members
with ``batchnorm="members"`` (PaMaL's choice). In training mode, a batched multi-forward normalises with
statistics pooled over all M preferences, whereas M sequential passes use per-preference statistics; the
two agree exactly in evaluation mode and for models without BatchNorm.
"""

from __future__ import annotations

import copy
from typing import Literal

from torch import nn

from paretorch.errors import ParetorchError
from paretorch.parameterisations._conditioned import FiLMLayer, PreferenceInput, conditioned, film
from paretorch.parameterisations._context import PreferenceState
from paretorch.parameterisations._ensemble import ENSEMBLE_LAYER_TYPES, EnsembleBatchNorm, EnsembleLayer
from paretorch.parameterisations._hyper import HyperParetoModel, hypernetwork
from paretorch.parameterisations._lowrank import LowRankConv, LowRankLinear, Scaling, adapter_scale
from paretorch.parameterisations._model import (
    PARETO_LAYER_TYPES,
    LayerParameters,
    ParameterReport,
    ParetoModel,
    Targets,
    _replace,
    check_num_tasks,
    map_tensors,
    recalibrate_batchnorm,
    select_layers,
    shared_parameters,
)

__all__ = [
    "PARETO_LAYER_TYPES",
    "FiLMLayer",
    "HyperParetoModel",
    "LayerParameters",
    "ParameterReport",
    "ParetoModel",
    "PreferenceInput",
    "conditioned",
    "ensemble",
    "film",
    "hypernetwork",
    "lowrank",
    "map_tensors",
    "plain",
    "recalibrate_batchnorm",
    "shared_parameters",
    "split_outputs",
]

LOWRANK_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def ensemble(
    model: nn.Module,
    num_tasks: int,
    targets: Targets = None,
    exclude: Targets = None,
    batchnorm: Literal["shared", "members"] = "shared",
    independent_init: bool = True,
) -> ParetoModel:
    """PaMaL's weight ensemble: every targeted layer gets T members, θ(λ) = Σ_t λ_t θ_t.

    Members are re-initialised the way each layer initialises itself (``reset_parameters``), independently;
    with ``independent_init=False`` member 0 keeps the user's weights (to start from a trained model).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> pm = ensemble(net, num_tasks=2)
    >>> pm(torch.randn(5, 4), [0.3, 0.7]).shape
    torch.Size([5, 2])
    """
    check_num_tasks(num_tasks)
    if batchnorm not in ("shared", "members"):
        raise ParetorchError(f"batchnorm must be 'shared' or 'members', got {batchnorm!r}")
    wrapped = copy.deepcopy(model)
    state = PreferenceState(num_tasks)
    supported = ENSEMBLE_LAYER_TYPES + (_BATCHNORM_TYPES if batchnorm == "members" else ())
    names = select_layers(wrapped, supported, targets, exclude, "ensemble")
    for name in names:
        layer = wrapped.get_submodule(name)
        if isinstance(layer, _BATCHNORM_TYPES):
            _replace(wrapped, name, EnsembleBatchNorm(layer, num_tasks, state, name))
        else:
            _replace(wrapped, name, EnsembleLayer(layer, num_tasks, state, name, independent_init))
    config = {"method": "ensemble", "num_tasks": num_tasks, "batchnorm": batchnorm,
              "independent_init": independent_init}
    return ParetoModel(wrapped, num_tasks, "ensemble", state, names, config)


def lowrank(
    model: nn.Module,
    num_tasks: int,
    rank: int = 1,
    scale: float = 1.0,
    scaling: Scaling = "palora",
    targets: Targets = None,
    exclude: Targets = None,
    freeze_base: bool = False,
) -> ParetoModel:
    """Base weights plus one low-rank delta per task, mixed by the preference.

    ``scaling="palora"``: W + (α/r) Σ_t λ_t A_t B_t with α = ``scale`` (PaLoRA Eq. 2).
    ``scaling="lorpman"``: θ0 + s Σ_i α_i B_i A_i with s = ``scale`` (LORPMAN Eq. 6).
    The up-projection starts at zero, so the model starts exactly at the user's weights.
    ``freeze_base=True`` trains only the adapters (PaLoRA's Pareto expansion from a trained checkpoint).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> pm = lowrank(net, num_tasks=2, rank=1, scale=2.0)
    >>> torch.allclose(pm(torch.ones(1, 4), [1.0, 0.0]), net(torch.ones(1, 4)))
    True
    """
    check_num_tasks(num_tasks)
    if not isinstance(rank, int) or rank < 1:
        raise ParetorchError(f"rank must be a positive integer, got {rank!r}")
    if scaling not in ("palora", "lorpman"):
        raise ParetorchError(f"scaling must be 'palora' or 'lorpman', got {scaling!r}")
    wrapped = copy.deepcopy(model)
    state = PreferenceState(num_tasks)
    factor = adapter_scale(scaling, scale, rank)
    names = select_layers(wrapped, LOWRANK_LAYER_TYPES, targets, exclude, "lowrank")
    for name in names:
        layer = wrapped.get_submodule(name)
        if isinstance(layer, nn.Linear):
            _replace(wrapped, name, LowRankLinear(layer, num_tasks, rank, factor, state, name))
        else:
            if layer.out_channels % layer.groups:
                raise ParetorchError(f"conv layer {name!r} has out_channels not divisible by groups")
            _replace(wrapped, name, LowRankConv(layer, num_tasks, rank, factor, state, name))
    config = {"method": "lowrank", "num_tasks": num_tasks, "rank": rank, "scale": scale, "scaling": scaling}
    pm = ParetoModel(wrapped, num_tasks, f"lowrank-{scaling}", state, names, config)
    if freeze_base:
        pm.freeze_base()
    return pm


def plain(model: nn.Module, num_tasks: int) -> ParetoModel:
    """The user's model with no Pareto layers: the preference is accepted and ignored (one trade-off, fixed
    by the loss weights). Linear scalarisation, single-task and MGDA baselines train this.

    >>> import torch
    >>> pm = plain(torch.nn.Linear(3, 2), num_tasks=2)
    >>> pm.at([0.5, 0.5]).weight.shape
    torch.Size([2, 3])
    """
    check_num_tasks(num_tasks)
    return ParetoModel(copy.deepcopy(model), num_tasks, "plain", PreferenceState(num_tasks), [],
                       {"method": "plain", "num_tasks": num_tasks})


def split_outputs(outputs: object, count: int) -> object:
    """Reshape each output of :meth:`ParetoModel.multi_forward` from ``(M·B, …)`` to ``(M, B, …)``."""
    return map_tensors(outputs, lambda t: t.view(count, t.shape[0] // count, *t.shape[1:]))

