"""The papers' methods as named presets of (parameterisation, preference sampler, objective, regularisers).

``build_method(name, model, num_tasks, epochs)`` returns a :class:`MethodSetup` with the wrapped model, the
sampler and a :class:`TrainConfig` holding the paper's defaults; keyword overrides change any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from paretorch.errors import ParetorchError
from paretorch.objectives import EPO, MGDA, GradientObjective, ParetoMTL, PreferenceMOO
from paretorch.parameterisations import ParetoModel, conditioned, ensemble, film, hypernetwork, lowrank, plain
from paretorch.preferences import AnnealedGrid, Dirichlet, Fixed, PreferenceSampler, unit_vectors
from paretorch.training.trainer import TrainConfig

__all__ = ["METHODS", "MethodSetup", "build_method", "pareto_expansion"]

METHODS = ("pamal", "palora", "lorpman", "cpmtl", "phn", "cosmos", "ls", "stl", "mgda", "pmtl")


@dataclass
class MethodSetup:
    """What a method needs to train: the steerable model, the preference sampler, the training config."""

    name: str
    pm: ParetoModel
    sampler: PreferenceSampler
    config: TrainConfig
    objective: GradientObjective | None = None


def _split(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    train_keys = {f.name for f in fields(TrainConfig)}
    return ({k: v for k, v in overrides.items() if k in train_keys},
            {k: v for k, v in overrides.items() if k not in train_keys})


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

    Sampler options: ``p``, ``m``, ``temperature``; parameterisation options: ``rank``, ``scale``,
    ``targets``, ``exclude``; any :class:`TrainConfig` field (``lr``, ``multi_forward_coef`` …).
    """
    train_overrides, options = _split(overrides)
    objective: GradientObjective | None = None
    generator = torch.Generator().manual_seed(seed)
    config: dict[str, Any] = {"epochs": epochs, "seed": seed}
    where = {k: options.pop(k) for k in ("targets", "exclude") if k in options and name != "cosmos"}
    if name == "pamal":
        pm = ensemble(model, num_tasks, **where)
        sampler: PreferenceSampler = Dirichlet(num_tasks, options.pop("p", 1.0), options.pop("m", 3), generator)
        config |= {"multi_forward_coef": 1.0}
    elif name == "palora":
        pm = lowrank(model, num_tasks, rank=options.pop("rank", 1), scale=options.pop("scale", 2.0),
                     scaling="palora", freeze_base=options.pop("freeze_base", False), **where)
        sampler = AnnealedGrid(num_tasks, options.pop("m", 5), options.pop("temperature", 1.0))
    elif name == "lorpman":
        pm = lowrank(model, num_tasks, rank=options.pop("rank", 8), scale=options.pop("scale", 1.0),
                     scaling="lorpman", **where)
        sampler = Dirichlet(num_tasks, options.pop("p", 1.0), options.pop("m", 4), generator)
        config |= {"orthogonality_coef": 1.0, "freeze_epoch": max(1, round(0.6 * epochs))}
    elif name in ("cpmtl", "phn"):
        # CPMTL: 2-layer MLP, 100 hidden, optional chunking, Dirichlet(1); PHN: 3-layer ray MLP, Dirichlet(0.2).
        pm = hypernetwork(model, num_tasks, hidden=options.pop("hidden", 100),
                          layers=options.pop("layers", 2 if name == "cpmtl" else 3),
                          chunk_size=options.pop("chunk_size", None))
        default_p = 1.0 if name == "cpmtl" else 0.2
        sampler = Dirichlet(num_tasks, options.pop("p", default_p), options.pop("m", 1), generator)
        # ls: CPMTL Eq. 8 / PHN-LS; moo: CPMTL Eq. 9; epo: PHN-EPO (Exact Pareto Optimal search per ray).
        options.setdefault("solver", "ls")
        objective = _solver_objective(options, seed)
        if objective is not None:  # both papers take the task gradients on all hypernetwork parameters
            config["objective_parameters"] = "all"
    elif name == "cosmos":
        conditioning = options.pop("conditioning", "input")
        if conditioning == "film":  # LORPMAN §4.3's FiLM baseline: feature-wise scale and shift
            pm = film(model, num_tasks, options.pop("targets", None), options.pop("exclude", None))
        elif conditioning == "input":
            pm = conditioned(model, num_tasks, options.pop("target", None))
        else:
            raise ParetorchError(f"cosmos conditioning must be 'input' or 'film', got {conditioning!r}")
        sampler = Dirichlet(num_tasks, options.pop("p", 1.2), options.pop("m", 1), generator)
        config |= {"cosine_coef": 1.0}
    elif name == "ls":
        weights = options.pop("weights", [1.0 / num_tasks] * num_tasks)
        pm, sampler = plain(model, num_tasks), Fixed([list(weights)])
    elif name == "stl":
        task = int(options.pop("task", 0))
        if not 0 <= task < num_tasks:
            raise ParetorchError(f"stl task must be in 0..{num_tasks - 1}, got {task}")
        pm = plain(model, num_tasks)
        sampler = Fixed([[1.0 if t == task else 0.0 for t in range(num_tasks)]])
    elif name == "mgda":
        pm, sampler = plain(model, num_tasks), Fixed([[1.0 / num_tasks] * num_tasks])
        objective = MGDA()
        if options.pop("ub", False):  # MGDA-UB: gradients with respect to the shared representation
            config |= {"objective_parameters": "representation",
                       "representation": options.pop("representation", "encoder")}
    elif name == "pmtl":
        refs = unit_vectors(num_tasks, int(options.pop("vectors", 5)))
        k = int(options.pop("k", 0))
        # Pareto MTL's vectors point along the loss vector (a large u_t means a large loss on task t), so the
        # run is labelled with the simplex weight w = (1 − ū_k) / (T − 1), ū_k = u_k / Σ u_k: more weight, less loss.
        label = (1.0 - refs[k] / refs[k].sum()) / (num_tasks - 1)
        pm, sampler = plain(model, num_tasks), Fixed([label.tolist()])
        objective = ParetoMTL(refs, k, eps=options.pop("eps", 1e-3), init_steps=options.pop("init_steps", 200))
        options.pop("stacked", None)  # run-level: train the K subproblems together (paretorch.runs)
    else:
        raise ParetorchError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    if name in ("pamal", "palora", "lorpman") and "solver" in options:
        # Beyond the papers: a continuous parameterisation trained with a per-preference gradient objective,
        # e.g. Pareto MTL's constraints around each sampled preference, reaches concave parts of a front.
        objective = _solver_objective(options, seed)
        config["objective_parameters"] = options.pop("objective_parameters", "all")
    if options:
        raise ParetorchError(f"unknown option(s) for {name}: {', '.join(sorted(options))}")
    config |= train_overrides
    return MethodSetup(name, pm, sampler, TrainConfig(**config), objective)


def _solver_objective(options: dict[str, Any], seed: int) -> GradientObjective | None:
    solver = options.pop("solver")
    if solver == "ls":
        return None
    if solver == "moo":
        return PreferenceMOO(options.pop("num_refs", 3), generator=torch.Generator().manual_seed(seed),
                             infeasible=options.pop("infeasible", "guarded"),
                             references=options.pop("references", "random"))
    if solver == "epo":
        return EPO(options.pop("eps", 1e-4))
    raise ParetorchError(f"solver must be 'ls', 'moo' or 'epo', got {solver!r}")


def pareto_expansion(trained: nn.Module | ParetoModel, num_tasks: int, epochs: int = 4, seed: int = 0,
                     **overrides: Any) -> MethodSetup:
    """PaLoRA's Pareto expansion (§5.4): adapters around an already trained model, the model itself frozen.

    ``trained`` is a plain model or a ``plain``/``ls`` ParetoModel (its inner model is used). Only the
    low-rank adapters train, so the front grows around the trained point; pass the final learning rate of
    the original run as ``lr``.
    """
    model = trained.model if isinstance(trained, ParetoModel) else trained
    return build_method("palora", model, num_tasks, epochs=epochs, seed=seed, freeze_base=True, **overrides)
