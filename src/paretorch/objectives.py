"""Objectives: how the task losses of one step become one scalar, possibly using the task gradients.

Modelled on torchjd's split between a weighting and its aggregation: an :class:`Objective` computes task
*weights* ``(M, T)`` from statistics of the step (the losses at each of the M preferences and, when it declares
``gradients``, the Gram matrix of the task gradients), and :class:`~paretorch.ParetoLoss` combines
``Σ_j Σ_t w_jt L_jt``. :class:`LinearScalarisation` needs no gradients; MGDA (Sener & Koltun 2018), Pareto MTL
(Lin et al. 2019), CPMTL's preference-based gradient (Lin et al. 2020) and EPO (Mahapatra & Rajan 2020) read
the Gram matrix. An objective knows nothing of layers: which parameters the gradients are taken on is what it
declares, and the loss computes them.

A new objective is a subclass that sets ``gradients`` (or leaves it ``None``) and implements ``weights``
(one preference) or ``step_weights`` (all of a step's preferences at once):

>>> class Tchebycheff(Objective):  # all the weight on the task with the largest λ_t·L_t
...     per_preference = True
...     def step_weights(self, losses, grams, prefs, generator=None):
...         worst = (prefs * losses).argmax(dim=1)
...         return torch.nn.functional.one_hot(worst, losses.shape[1]).to(losses.dtype)
>>> Tchebycheff().step_weights(torch.tensor([[1.0, 3.0]]), None, torch.tensor([[0.5, 0.5]]))
tensor([[0., 1.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from paretorch.errors import ParetorchError
from paretorch.solvers import (
    epo_weights,
    guarded_feasibility_weights,
    min_norm_weights,
    pareto_mtl_feasibility_weights,
    pareto_mtl_weights,
)

__all__ = ["EPO", "MGDA", "GradientSource", "LinearScalarisation", "Objective", "ParetoMTL", "PreferenceMOO"]

#: Where the task gradients of a Gram matrix are taken: the parameters every task depends on, all trainable
#: parameters, or the output of a named submodule of the user's model (MGDA-UB).
GradientSource = Literal["shared", "all", "representation"]


class Objective:
    """Task weights from one step's statistics: losses, and a Gram matrix of task gradients if ``gradients``.

    - ``weights(losses (T,), gram (T, T) | None, pref (T,) | None, generator)`` → ``(T,)`` for one preference,
      ``step_weights`` the same for the M preferences of a step → ``(M, T)``. Both are pure: calling them
      (to log, to inspect) never changes what training does. Random draws (CPMTL's references) come from the
      ``generator`` the caller owns and passes in.
    - ``update(losses, grams, prefs)`` advances the state of a stateful objective (Pareto MTL's initial phase);
      the loss calls it once per step after taking the weights. Its state goes into checkpoints through
      ``state_dict``/``load_state_dict``.
    - ``gradients``: ``None`` (losses are enough) or the :data:`GradientSource` of the Gram matrix it reads.
    - ``per_preference``: whether the weights depend on the step's preference, so that several preferences
      per step make sense (objectives that train one model, like MGDA, take one preference per step).
    """

    per_preference: bool = False
    gradients: GradientSource | None = None

    def weights(self, losses: Tensor, gram: Tensor | None, pref: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Weights ``(T,)`` for one preference ``pref`` (losses ``(T,)``, gram ``(T, T)`` or ``None``)."""
        if type(self).step_weights is Objective.step_weights:
            raise NotImplementedError(f"{type(self).__name__} implements neither weights nor step_weights")
        if pref is None:
            raise ParetorchError(f"{type(self).__name__} needs the step's preference")
        return self.step_weights(losses[None], None if gram is None else gram[None], pref[None], generator)[0]

    def step_weights(self, losses: Tensor, grams: Tensor | None, prefs: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
        """Weights ``(M, T)`` for the ``M`` preferences of one step (losses ``(M, T)``, grams ``(M, T, T)``).

        By default one preference per step (objectives without a preference, like MGDA, or with a fixed one,
        like Pareto MTL, train one model); preference-conditioned objectives override this.
        """
        if prefs.shape[0] != 1:
            raise ParetorchError(f"{type(self).__name__} trains one preference per step, got m={prefs.shape[0]}; "
                                 "set m=1")
        return self.weights(losses[0], None if grams is None else grams[0], prefs[0], generator)[None]

    def update(self, losses: Tensor, grams: Tensor | None, prefs: Tensor) -> None:
        """Advance the objective's state after a step with losses ``(M, T)`` and grams ``(M, T, T)``."""
        del losses, grams, prefs

    def state_dict(self) -> dict[str, object]:
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        del state


class LinearScalarisation(Objective):
    """λᵀL: each preference weighs the task losses directly (PaMaL, PaLoRA, LORPMAN, PHN-LS, CPMTL Eq. 8).

    >>> LinearScalarisation().step_weights(torch.ones(2, 2), None, torch.tensor([[0.3, 0.7], [1.0, 0.0]]))
    tensor([[0.3000, 0.7000],
            [1.0000, 0.0000]])
    """

    per_preference = True

    def step_weights(self, losses: Tensor, grams: Tensor | None, prefs: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
        return prefs


class MGDA(Objective):
    """Min-norm weights: a common descent direction of all tasks, towards one Pareto-stationary point.

    ``gradients="representation"`` is MGDA-UB (gradients with respect to the shared representation).

    >>> MGDA().weights(torch.ones(2), torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    tensor([0.8000, 0.2000])
    """

    def __init__(self, gradients: GradientSource = "shared") -> None:
        self.gradients = _check_source(gradients)

    def weights(self, losses: Tensor, gram: Tensor | None, pref: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        return min_norm_weights(_needs_gram(self, gram)).to(losses.dtype)


class ParetoMTL(Objective):
    """Pareto MTL's subproblem ``k`` among the preference vectors ``refs`` (K, T).

    First the initial phase (Eq. 9): descend on the violated constraints until the losses lie in region k
    or ``init_steps`` steps have passed (``init_steps=0`` skips it, App. A). Then the constrained min-norm
    direction (Eq. 14, ε-active set Eq. 11) as the adaptive weights of Eq. 18.
    """

    def __init__(self, refs: Tensor | Sequence[Sequence[float]], k: int, eps: float = 1e-3,
                 init_steps: int = 200, gradients: GradientSource = "shared") -> None:
        self.gradients = _check_source(gradients)
        self.refs = torch.as_tensor(refs, dtype=torch.float64)
        if not 0 <= k < len(self.refs):
            raise ParetorchError(f"Pareto MTL subproblem k={k} is not one of the {len(self.refs)} vectors")
        self.k, self.eps, self.init_steps = k, eps, init_steps
        self.steps = 0
        self.feasible = init_steps == 0

    def _initial_step(self, losses: Tensor, gram: Tensor) -> Tensor | None:
        # The initial phase's weights while it lasts: outside region k and within init_steps, else None.
        if self.feasible or self.steps >= self.init_steps:
            return None
        step = pareto_mtl_feasibility_weights(losses, gram, self.refs, self.k)
        return None if step is None else step.weights

    def weights(self, losses: Tensor, gram: Tensor | None, pref: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        gram = _needs_gram(self, gram)
        initial = self._initial_step(losses, gram)
        if initial is not None:
            return initial.to(losses.dtype)
        return pareto_mtl_weights(losses, gram, self.refs, self.k, self.eps).weights.to(losses.dtype)

    def update(self, losses: Tensor, grams: Tensor | None, prefs: Tensor) -> None:
        # Once the losses reach region k (or init_steps have passed) the initial phase ends for good.
        grams = _needs_gram(self, grams)
        if not self.feasible and self._initial_step(losses.reshape(-1, losses.shape[-1])[0],
                                                    grams.reshape(-1, *grams.shape[-2:])[0]) is None:
            self.feasible = True
        self.steps += 1

    def state_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "feasible": self.feasible}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps, self.feasible = int(state["steps"]), bool(state["feasible"])  # type: ignore[arg-type]


def loss_direction(pref: Tensor) -> Tensor:
    """The unit vector along which losses should lie for a simplex weight λ: u ∝ (1 − λ) / (T − 1).

    Pareto MTL and CPMTL state preferences as directions in loss space (a large u_t means a large loss on
    task t); paretorch states them as weights (a large λ_t means a small loss). For two tasks this swaps the
    coordinates: λ = (0.8, 0.2) ↦ u ∝ (0.2, 0.8). A batch ``(M, T)`` gives one unit vector per row.
    """
    direction = (1.0 - pref.double()) / (pref.shape[-1] - 1)
    return direction / direction.norm(dim=-1, keepdim=True)  # per row for a batch (M, T) of preferences


class PreferenceMOO(Objective):
    """CPMTL's preference-based multi-objective gradient (Lin et al. 2020, Eq. 9, App. A.2-A.3).

    For each preference λ of the step (mapped to the loss direction p by :func:`loss_direction`) the
    constraints G_j = (u⁽ʲ⁾ − p)ᵀL ≤ 0 keep the losses closer to p than to each reference u⁽ʲ⁾, and the weights
    α_i = λ_i + Σ_j β_j (u⁽ʲ⁾_i − p_i) come from the Pareto MTL dual with p as the subproblem's vector. Unlike
    linear scalarisation this reaches concave parts of a front.

    - ``references="random"``: ``num_refs`` unit vectors drawn uniformly on the positive orthant of the sphere
      each step (the paper's K = 3), from the ``generator`` the caller passes (without one, from a copy of the
      generator given here, so that calls are pure); ``"batch"``: the step's other preferences (App. A.3,
      needs m ≥ 2).
    - ``infeasible="guarded"`` (default): while a preference's losses lie outside its region, the step is
      :func:`~paretorch.solvers.guarded_feasibility_weights`; inside, Eq. 11 as in the paper.
      ``infeasible="paper"`` uses Eq. 11 everywhere, as App. A.2 writes it. Why the default differs: Eq. 11
      asks every loss to decrease, so every Pareto-stationary solution is a fixed point even outside its
      region; a generator that reaches the front before it has learnt to separate the preferences then stays
      where it is. On CPMTL's sine problem (``python benchmarks/sine_problem.py``) the paper's rule put all
      preferences at one spot of the front while the guarded rule reconstructs it.

    With several preferences per step each gets its own dual (its own Gram matrix) and the directions are
    summed, as Eq. 19 sums linear scalarisations; the coupled dual of Eq. 20-21 is not implemented.
    """

    per_preference = True

    def __init__(self, num_refs: int = 3, eps: float = 1e-3, generator: torch.Generator | None = None,
                 infeasible: Literal["guarded", "paper"] = "guarded",
                 references: Literal["random", "batch"] = "random", gradients: GradientSource = "all") -> None:
        if infeasible not in ("guarded", "paper"):
            raise ParetorchError(f"infeasible must be 'guarded' or 'paper', got {infeasible!r}")
        if references not in ("random", "batch"):
            raise ParetorchError(f"references must be 'random' or 'batch', got {references!r}")
        if num_refs < 1:
            raise ParetorchError(f"num_refs must be >= 1, got {num_refs}")
        self.num_refs, self.eps, self.infeasible, self.references = num_refs, eps, infeasible, references
        self.gradients = _check_source(gradients)
        # Only the state is kept: each call without a generator starts from it again (pure calls).
        self._default_state = (generator if generator is not None else torch.Generator().manual_seed(0)).get_state()

    def _random_refs(self, tasks: int, generator: torch.Generator) -> Tensor:
        refs = torch.randn(self.num_refs, tasks, generator=generator, dtype=torch.float64).abs()
        return refs / refs.norm(dim=1, keepdim=True)

    def _solve(self, losses: Tensor, gram: Tensor, vectors: Tensor) -> Tensor:
        step = (guarded_feasibility_weights(losses, gram, vectors, 0) if self.infeasible == "guarded" else None)
        if step is None:
            step = pareto_mtl_weights(losses, gram, vectors, 0, self.eps)
        return step.weights.to(losses.dtype)

    def step_weights(self, losses: Tensor, grams: Tensor | None, prefs: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
        grams = _needs_gram(self, grams)
        directions = loss_direction(prefs.detach().cpu())
        if self.references == "batch" and len(prefs) < 2:
            raise ParetorchError("PreferenceMOO(references='batch') needs m >= 2 preferences per step")
        if generator is None:
            generator = torch.Generator()
            generator.set_state(self._default_state)
        rows = []
        for j, direction in enumerate(directions):
            refs = (torch.cat([directions[:j], directions[j + 1:]]) if self.references == "batch"
                    else self._random_refs(len(direction), generator))
            rows.append(self._solve(losses[j].detach().cpu(), grams[j].cpu(), torch.cat([direction[None], refs])))
        return torch.stack(rows).to(losses.device)


class EPO(Objective):
    """Exact Pareto Optimal search (Mahapatra & Rajan 2020) per preference: PHN-EPO's solver.

    Each preference λ of the step is EPO's ray: the step balances ``λ_t·L_t`` towards equal values (allowing a
    controlled rise of under-weighted losses) and then descends along the ray; see
    :func:`~paretorch.solvers.epo_weights`. Needs scipy (``pip install 'paretorch[epo]'``).

    >>> EPO().weights(torch.tensor([1.0, 1.0]), torch.eye(2), torch.tensor([0.8, 0.2])).tolist()
    [1.0, 0.0]
    """

    per_preference = True

    def __init__(self, eps: float = 1e-4, gradients: GradientSource = "all") -> None:
        self.eps = eps
        self.gradients = _check_source(gradients)

    def step_weights(self, losses: Tensor, grams: Tensor | None, prefs: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
        grams = _needs_gram(self, grams)
        rows = [epo_weights(loss.detach().cpu(), gram.cpu(), pref.detach().cpu(), self.eps).weights
                for loss, gram, pref in zip(losses, grams, prefs, strict=True)]
        return torch.stack(rows).to(device=losses.device, dtype=losses.dtype)


def _check_source(gradients: str) -> GradientSource:
    if gradients not in ("shared", "all", "representation"):
        raise ParetorchError(f"gradients must be 'shared', 'all' or 'representation', got {gradients!r}")
    return gradients  # type: ignore[return-value]


def _needs_gram(objective: Objective, gram: Tensor | None) -> Tensor:
    if gram is None:
        raise ParetorchError(f"{type(objective).__name__} reads the Gram matrix of the task gradients; "
                             "none was given")
    return gram
