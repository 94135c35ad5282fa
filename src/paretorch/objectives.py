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

__all__ = ["MGDA", "GradientObjective", "ParetoMTL"]


class GradientObjective:
    """Task weights from the losses ``(T,)`` and the Gram matrix ``(T, T)`` of the task gradients."""

    def weights(self, losses: Tensor, gram: Tensor) -> Tensor:
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

    def weights(self, losses: Tensor, gram: Tensor) -> Tensor:
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

    def weights(self, losses: Tensor, gram: Tensor) -> Tensor:
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


def task_gram(losses: Tensor, params: Sequence[torch.nn.Parameter]) -> Tensor:
    """The Gram matrix of the task gradients ``∇_params L_t`` (T, T), keeping the graph for the update."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params, strict=True)]))
    jacobian = torch.stack(rows).double()
    return jacobian @ jacobian.T
