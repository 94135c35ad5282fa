"""Objectives: how the task losses of one step become one scalar, possibly using the task gradients.

Modelled on torchjd's split: an objective computes task *weights* from statistics of the step (losses, Gram
matrix of task gradients), and the trainer combines ``Σ_t w_t L_t``. Linear scalarisation needs no gradients;
MGDA (Sener & Koltun 2018) and Pareto MTL (Lin et al. 2019) read the Gram matrix.
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

__all__ = ["EPO", "MGDA", "GradientObjective", "ParetoMTL", "PerPreferenceObjective", "PreferenceMOO"]


class GradientObjective:
    """Task weights from the losses ``(T,)`` and the Gram matrix ``(T, T)`` of the task gradients.

    ``weights`` is pure: calling it (to log, to inspect) never changes what training does. An objective with
    state (Pareto MTL's initial phase) advances it in ``update``, which a trainer calls once per step after
    taking the weights.
    """

    #: whether the weights depend on the step's preference, so that several preferences per step make sense
    per_preference: bool = False

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def step_weights(self, losses: Tensor, grams: Tensor, prefs: Tensor) -> Tensor:
        """Weights ``(M, T)`` for the ``M`` preferences of one step (losses ``(M, T)``, grams ``(M, T, T)``).

        Objectives without a preference (MGDA) or with a fixed one (Pareto MTL) train one model, one
        preference per step; preference-conditioned ones override this.
        """
        if prefs.shape[0] != 1:
            raise ParetorchError(f"{type(self).__name__} trains one preference per step, got m={prefs.shape[0]}; "
                                 "set m=1")
        return self.weights(losses[0], grams[0], prefs[0])[None]

    def update(self, losses: Tensor, grams: Tensor, prefs: Tensor) -> None:
        """Advance the objective's state after a step with losses ``(M, T)`` and grams ``(M, T, T)``."""
        del losses, grams, prefs

    def state_dict(self) -> dict[str, object]:
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        del state


class MGDA(GradientObjective):
    """Min-norm weights: a common descent direction of all tasks, towards one Pareto-stationary point.

    >>> MGDA().weights(torch.ones(2), torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    tensor([0.8000, 0.2000])
    """

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        return min_norm_weights(gram).to(losses.dtype)


class ParetoMTL(GradientObjective):
    """Pareto MTL's subproblem ``k`` among the preference vectors ``refs`` (K, T).

    First the initial phase (Eq. 9): descend on the violated constraints until the losses lie in region k
    or ``init_steps`` steps have passed (``init_steps=0`` skips it, App. A). Then the constrained min-norm
    direction (Eq. 14, ε-active set Eq. 11) as the adaptive weights of Eq. 18.
    """

    def __init__(self, refs: Tensor | Sequence[Sequence[float]], k: int, eps: float = 1e-3,
                 init_steps: int = 200) -> None:
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

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        initial = self._initial_step(losses, gram)
        if initial is not None:
            return initial.to(losses.dtype)
        return pareto_mtl_weights(losses, gram, self.refs, self.k, self.eps).weights.to(losses.dtype)

    def update(self, losses: Tensor, grams: Tensor, prefs: Tensor) -> None:
        # Once the losses reach region k (or init_steps have passed) the initial phase ends for good.
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


class PerPreferenceObjective(GradientObjective):
    """An objective whose weights depend on each preference of the step; subclasses implement ``step_weights``."""

    per_preference = True

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        if pref is None:
            raise ParetorchError(f"{type(self).__name__} needs the step's preference")
        return self.step_weights(losses[None], gram[None], pref[None])[0]


class PreferenceMOO(PerPreferenceObjective):
    """CPMTL's preference-based multi-objective gradient (Lin et al. 2020, Eq. 9, App. A.2-A.3).

    For each preference λ of the step (mapped to the loss direction p by :func:`loss_direction`) the
    constraints G_j = (u⁽ʲ⁾ − p)ᵀL ≤ 0 keep the losses closer to p than to each reference u⁽ʲ⁾, and the weights
    α_i = λ_i + Σ_j β_j (u⁽ʲ⁾_i − p_i) come from the Pareto MTL dual with p as the subproblem's vector. Unlike
    linear scalarisation this reaches concave parts of a front.

    - ``references="random"``: ``num_refs`` unit vectors drawn uniformly on the positive orthant of the sphere
      each step (the paper's K = 3); ``"batch"``: the step's other preferences (App. A.3, needs m ≥ 2).
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

    def __init__(self, num_refs: int = 3, eps: float = 1e-3, generator: torch.Generator | None = None,
                 infeasible: Literal["guarded", "paper"] = "guarded",
                 references: Literal["random", "batch"] = "random") -> None:
        if infeasible not in ("guarded", "paper"):
            raise ParetorchError(f"infeasible must be 'guarded' or 'paper', got {infeasible!r}")
        if references not in ("random", "batch"):
            raise ParetorchError(f"references must be 'random' or 'batch', got {references!r}")
        if num_refs < 1:
            raise ParetorchError(f"num_refs must be >= 1, got {num_refs}")
        self.num_refs, self.eps, self.infeasible, self.references = num_refs, eps, infeasible, references
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def _random_refs(self, tasks: int) -> Tensor:
        refs = torch.randn(self.num_refs, tasks, generator=self.generator, dtype=torch.float64).abs()
        return refs / refs.norm(dim=1, keepdim=True)

    def _solve(self, losses: Tensor, gram: Tensor, vectors: Tensor) -> Tensor:
        step = (guarded_feasibility_weights(losses, gram, vectors, 0) if self.infeasible == "guarded" else None)
        if step is None:
            step = pareto_mtl_weights(losses, gram, vectors, 0, self.eps)
        return step.weights.to(losses.dtype)

    def step_weights(self, losses: Tensor, grams: Tensor, prefs: Tensor) -> Tensor:
        directions = loss_direction(prefs.detach().cpu())
        if self.references == "batch" and len(prefs) < 2:
            raise ParetorchError("PreferenceMOO(references='batch') needs m >= 2 preferences per step")
        rows = []
        for j, direction in enumerate(directions):
            refs = (torch.cat([directions[:j], directions[j + 1:]]) if self.references == "batch"
                    else self._random_refs(len(direction)))
            rows.append(self._solve(losses[j].detach().cpu(), grams[j].cpu(), torch.cat([direction[None], refs])))
        return torch.stack(rows).to(losses.device)

    def state_dict(self) -> dict[str, object]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])  # type: ignore[arg-type]


class EPO(PerPreferenceObjective):
    """Exact Pareto Optimal search (Mahapatra & Rajan 2020) per preference: PHN-EPO's solver.

    Each preference λ of the step is EPO's ray: the step balances ``λ_t·L_t`` towards equal values (allowing a
    controlled rise of under-weighted losses) and then descends along the ray; see
    :func:`~paretorch.solvers.epo_weights`. Needs scipy (``pip install 'paretorch[epo]'``).

    >>> EPO().weights(torch.tensor([1.0, 1.0]), torch.eye(2), torch.tensor([0.8, 0.2])).tolist()
    [1.0, 0.0]
    """

    def __init__(self, eps: float = 1e-4) -> None:
        self.eps = eps

    def step_weights(self, losses: Tensor, grams: Tensor, prefs: Tensor) -> Tensor:
        rows = [epo_weights(loss.detach().cpu(), gram.cpu(), pref.detach().cpu(), self.eps).weights
                for loss, gram, pref in zip(losses, grams, prefs, strict=True)]
        return torch.stack(rows).to(device=losses.device, dtype=losses.dtype)


def task_gram(losses: Tensor, params: Sequence[torch.nn.Parameter]) -> Tensor:
    """The Gram matrix of the task gradients ``∇_params L_t`` (T, T), keeping the graph for the update."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params, strict=True)]))
    jacobian = torch.stack(rows).double()
    return jacobian @ jacobian.T
