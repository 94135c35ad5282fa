"""Objectives: how the task losses of one step become one scalar, possibly using the task gradients.

Modelled on torchjd's split: an objective computes task *weights* from statistics of the step (losses, Gram
matrix of task gradients), and the trainer combines ``Σ_t w_t L_t``. Linear scalarisation needs no gradients;
MGDA (Sener & Koltun 2018) and Pareto MTL (Lin et al. 2019) read the Gram matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from paretorch.errors import ParetorchError
from paretorch.solvers import min_norm_weights, pareto_mtl_feasibility_weights, pareto_mtl_weights

__all__ = ["MGDA", "GradientObjective", "ParetoMTL", "PreferenceMOO"]


class GradientObjective:
    """Task weights from the losses ``(T,)`` and the Gram matrix ``(T, T)`` of the task gradients."""

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        raise NotImplementedError

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

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        self.steps += 1
        if not self.feasible:
            step = pareto_mtl_feasibility_weights(losses, gram, self.refs, self.k)
            if step is not None and self.steps <= self.init_steps:
                return step.weights.to(losses.dtype)
            self.feasible = True
        return pareto_mtl_weights(losses, gram, self.refs, self.k, self.eps).weights.to(losses.dtype)

    def state_dict(self) -> dict[str, object]:
        return {"steps": self.steps, "feasible": self.feasible}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.steps, self.feasible = int(state["steps"]), bool(state["feasible"])  # type: ignore[arg-type]


def loss_direction(pref: Tensor) -> Tensor:
    """The unit vector along which losses should lie for a simplex weight λ: u ∝ (1 − λ) / (T − 1).

    Pareto MTL and CPMTL state preferences as directions in loss space (a large u_t means a large loss on
    task t); paretorch states them as weights (a large λ_t means a small loss). For two tasks this swaps the
    coordinates: λ = (0.8, 0.2) ↦ u ∝ (0.2, 0.8).
    """
    direction = (1.0 - pref.double()) / (pref.shape[-1] - 1)
    return direction / direction.norm()


class PreferenceMOO(GradientObjective):
    """CPMTL's preference-based multi-objective gradient (Lin et al. 2020, Eq. 9, App. A.2).

    For the step's preference λ (mapped to the loss direction p by :func:`loss_direction`) and
    ``num_refs`` random unit reference vectors u⁽ʲ⁾ (uniform on the positive orthant of the sphere), the
    constraints G_j = (u⁽ʲ⁾ − p)ᵀL ≤ 0 keep the losses closer to p than to any reference; the weights
    α_i = λ_i + Σ_j β_j (u⁽ʲ⁾_i − p_i) come from the Pareto MTL dual with p as the subproblem's vector.
    Unlike linear scalarisation this reaches concave parts of a front.
    """

    def __init__(self, num_refs: int = 3, eps: float = 1e-3, generator: torch.Generator | None = None) -> None:
        self.num_refs, self.eps = num_refs, eps
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def weights(self, losses: Tensor, gram: Tensor, pref: Tensor | None = None) -> Tensor:
        if pref is None:
            raise ParetorchError("PreferenceMOO needs the step's preference")
        direction = loss_direction(pref.detach().cpu())
        refs = torch.randn(self.num_refs, len(direction), generator=self.generator, dtype=torch.float64).abs()
        refs = refs / refs.norm(dim=1, keepdim=True)
        vectors = torch.cat([direction[None], refs])
        return pareto_mtl_weights(losses, gram, vectors, 0, self.eps).weights.to(losses.dtype)


def task_gram(losses: Tensor, params: Sequence[torch.nn.Parameter]) -> Tensor:
    """The Gram matrix of the task gradients ``∇_params L_t`` (T, T), keeping the graph for the update."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params, strict=True)]))
    jacobian = torch.stack(rows).double()
    return jacobian @ jacobian.T
