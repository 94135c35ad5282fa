"""The papers' methods as named presets of (parameterisation, preference sampler, objective, regularisers).

``build_method(name, model, num_tasks, epochs)`` returns a :class:`MethodSetup` with the wrapped model, the
sampler and a :class:`TrainConfig` holding the paper's defaults; keyword overrides change any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from paretorch.objectives import EPO, MGDA, GradientObjective, ParetoMTL, PreferenceMOO
from paretorch.options import METHODS, TRAIN_OPTIONS, validate_method_options
from paretorch.parameterisations import ParetoModel, conditioned, ensemble, film, hypernetwork, lowrank, plain
from paretorch.preferences import AnnealedGrid, Dirichlet, Fixed, PreferenceSampler, unit_vectors
from paretorch.training.trainer import TrainConfig

__all__ = ["METHODS", "MethodSetup", "build_method", "pareto_expansion"]


@dataclass
class MethodSetup:
    """What a method needs to train: the steerable model, the preference sampler, the training config."""

    name: str
    pm: ParetoModel
    sampler: PreferenceSampler
    config: TrainConfig
    objective: GradientObjective | None = None


def build_method(name: str, model: nn.Module, num_tasks: int, epochs: int = 10, seed: int = 0,
                 **overrides: Any) -> MethodSetup:
    """Build a method preset with the papers' defaults.

    - ``pamal`` (PaMaL): ensemble, Dirichlet(p=1), window ``m=3``, λ_p = 1 (lexicographic edges).
    - ``palora`` (PaLoRA): low-rank r = 1, α = 2, AnnealedGrid with ``m=5`` rays, temperature Q = 1, no regulariser.
    - ``lorpman`` (LORPMAN): low-rank r = 8, s = 1, Dirichlet(p=1) window ``m=4``, λ_p = 0, λ_o = 1, freeze
      epoch at 60 % of training (6 of 10 epochs, as tuned for MultiMNIST).
    - ``cpmtl`` (Controllable Pareto MTL): hypernetwork (2-layer MLP, 100 hidden, ``chunk_size`` optional),
      Dirichlet(p=1), ``m`` preferences per step (default 1), preference-based linear scalarisation (Eq. 8),
      or with ``solver="moo"`` the preference-based multi-objective gradient (Eq. 9, ``num_refs`` = 3;
      ``infeasible`` and ``references`` as in :class:`~paretorch.objectives.PreferenceMOO`).
    - ``phn`` (Pareto HyperNetwork): hypernetwork with a 3-layer MLP, Dirichlet(p=0.2), linear scalarisation,
      or ``solver="epo"`` (EPO search per ray, needs scipy); ``solver="moo"`` works here too.
    - ``cosmos`` (COSMOS): the preference as extra input of the first layer, Dirichlet(p=1.2), loss
      λᵀL − μ·cos(L, λ) with μ = ``cosine_coef`` = 1; ``conditioning="film"`` conditions by FiLM instead
      (:func:`~paretorch.parameterisations.film`, ``targets`` / ``exclude`` select the layers).
    - ``ls``: the plain model with fixed ``weights`` (default uniform).
    - ``stl``: the plain model trained on task ``task`` alone (one run per task gives the single-task set).
    - ``mgda``: the plain model with MGDA's min-norm weights each step (gradients on the shared parameters;
      ``ub=True``: MGDA-UB, gradients with respect to the output of the submodule ``representation``,
      default ``"encoder"``).
    - ``pmtl``: Pareto MTL's subproblem ``k`` of ``vectors`` (default 5) unit preference vectors, initial phase
      of ``init_steps`` (default 200; 0 skips it), ε = ``eps``; one run per k gives the method's set
      (``paretorch train … method=pmtl stacked=true`` trains the K runs together, vmapped).

    ``pamal``, ``palora`` and ``lorpman`` also take ``solver="moo"`` or ``"epo"`` (beyond the papers): each
    sampled preference then gets CPMTL's constraint-based or EPO's weights instead of linear scalarisation,
    so the continuous front can cover concave parts.

    Every option, its type, default and where it applies is in :data:`paretorch.options.METHOD_OPTIONS` and
    :data:`~paretorch.options.TRAIN_OPTIONS` (``lr``, ``multi_forward_coef`` …); an unknown option, a value of the
    wrong type or range, or an option the method would ignore is one :class:`ParetorchError` line.
    """
    options = validate_method_options(name, overrides, num_tasks)
    train_overrides = {key: options.pop(key) for key in list(options) if key in TRAIN_OPTIONS}
    objective: GradientObjective | None = None
    generator = torch.Generator().manual_seed(seed)
    config: dict[str, Any] = {"epochs": epochs, "seed": seed}
    if name == "pamal":
        pm = ensemble(model, num_tasks, targets=options["targets"], exclude=options["exclude"])
        sampler: PreferenceSampler = Dirichlet(num_tasks, options["p"], options["m"], generator)
        config |= {"multi_forward_coef": 1.0}
    elif name == "palora":
        pm = lowrank(model, num_tasks, rank=options["rank"], scale=options["scale"], scaling="palora",
                     freeze_base=options["freeze_base"], targets=options["targets"], exclude=options["exclude"])
        sampler = AnnealedGrid(num_tasks, options["m"], options["temperature"])
    elif name == "lorpman":
        pm = lowrank(model, num_tasks, rank=options["rank"], scale=options["scale"], scaling="lorpman",
                     targets=options["targets"], exclude=options["exclude"])
        sampler = Dirichlet(num_tasks, options["p"], options["m"], generator)
        config |= {"orthogonality_coef": 1.0, "freeze_epoch": max(1, round(0.6 * epochs))}
    elif name in ("cpmtl", "phn"):
        # CPMTL: 2-layer MLP, 100 hidden, optional chunking, Dirichlet(1); PHN: 3-layer ray MLP, Dirichlet(0.2).
        pm = hypernetwork(model, num_tasks, hidden=options["hidden"], layers=options["layers"],
                          chunk_size=options["chunk_size"])
        sampler = Dirichlet(num_tasks, options["p"], options["m"], generator)
    elif name == "cosmos":
        if options["conditioning"] == "film":  # LORPMAN §4.3's FiLM baseline: feature-wise scale and shift
            pm = film(model, num_tasks, options["targets"], options["exclude"])
        else:
            pm = conditioned(model, num_tasks, options["target"])
        sampler = Dirichlet(num_tasks, options["p"], options["m"], generator)
        config |= {"cosine_coef": 1.0}
    elif name == "ls":
        weights = options["weights"] or [1.0 / num_tasks] * num_tasks
        pm, sampler = plain(model, num_tasks), Fixed([list(weights)])
    elif name == "stl":
        task = options["task"] or 0
        pm = plain(model, num_tasks)
        sampler = Fixed([[1.0 if t == task else 0.0 for t in range(num_tasks)]])
    elif name == "mgda":
        pm, sampler = plain(model, num_tasks), Fixed([[1.0 / num_tasks] * num_tasks])
        objective = MGDA()
        if options["ub"]:  # MGDA-UB: gradients with respect to the shared representation
            config |= {"objective_parameters": "representation"}
    else:  # pmtl
        refs = unit_vectors(num_tasks, options["vectors"])
        k = options["k"] or 0
        # Pareto MTL's vectors point along the loss vector (a large u_t means a large loss on task t), so the
        # run is labelled with the simplex weight w = (1 − ū_k) / (T − 1), ū_k = u_k / Σ u_k: more weight, less loss.
        label = (1.0 - refs[k] / refs[k].sum()) / (num_tasks - 1)
        pm, sampler = plain(model, num_tasks), Fixed([label.tolist()])
        objective = ParetoMTL(refs, k, eps=options["eps"], init_steps=options["init_steps"])
    if name in ("pamal", "palora", "lorpman", "cpmtl", "phn") and options["solver"] != "ls":
        # ls: linear scalarisation (CPMTL Eq. 8 / PHN-LS); moo: CPMTL Eq. 9; epo: PHN-EPO. Beyond the papers, a
        # continuous parameterisation with moo/epo reaches concave parts of a front. Both papers take the task
        # gradients on all parameters.
        objective = _solver_objective(options, seed)
        config["objective_parameters"] = "all"
    config |= train_overrides
    return MethodSetup(name, pm, sampler, TrainConfig(**config), objective)


def _solver_objective(options: dict[str, Any], seed: int) -> GradientObjective:
    if options["solver"] == "moo":
        return PreferenceMOO(options["num_refs"], generator=torch.Generator().manual_seed(seed),
                             infeasible=options["infeasible"], references=options["references"])
    return EPO(options["eps"])


def pareto_expansion(trained: nn.Module | ParetoModel, num_tasks: int, epochs: int = 4, seed: int = 0,
                     **overrides: Any) -> MethodSetup:
    """PaLoRA's Pareto expansion (§5.4): adapters around an already trained model, the model itself frozen.

    ``trained`` is a plain model or a ``plain``/``ls`` ParetoModel (its inner model is used). Only the
    low-rank adapters train, so the front grows around the trained point; pass the final learning rate of
    the original run as ``lr``.
    """
    model = trained.model if isinstance(trained, ParetoModel) else trained
    return build_method("palora", model, num_tasks, epochs=epochs, seed=seed, freeze_base=True, **overrides)
