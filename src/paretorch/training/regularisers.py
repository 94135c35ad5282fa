"""Regularisers that shape a learned front, as objects that :class:`~paretorch.ParetoLoss` adds to the objective.

A :class:`Regulariser` has a coefficient and computes its penalty from what one training step produced
(:class:`StepOutputs`: the step's preferences, the task losses at each, the model, and a random stream the
loss owns). The built-in ones:

- :class:`MultiForwardOrdering`: PaMaL's multi-forward ordering penalty (Eq. 3);
- :class:`Orthogonality`: LORPMAN's orthogonality of the low-rank task deltas (Eq. 7-8);
- :class:`CosineAlignment`: COSMOS's cosine term, −Σ_j cos(L(λ_j), λ_j) (or EPO's ray 1/λ_j).

A new one is a subclass with ``penalty(step)``:

>>> class LossSpread(Regulariser):  # variance of the task losses across the step's preferences
...     def penalty(self, step):
...         return step.losses.var(dim=0).sum()
>>> step = StepOutputs(prefs=torch.eye(2), losses=torch.tensor([[1.0, 2.0], [3.0, 2.0]]))
>>> LossSpread(0.5)(step)
tensor(1.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from paretorch.errors import ParetorchError
from paretorch.parameterisations import lowrank_deltas

if TYPE_CHECKING:
    from paretorch.parameterisations import ParetoModel

__all__ = [
    "CosineAlignment",
    "MultiForwardOrdering",
    "Orthogonality",
    "Regulariser",
    "StepOutputs",
    "multi_forward_penalty",
    "orthogonality_penalty",
]


@dataclass(frozen=True)
class StepOutputs:
    """What one training step produced, for the regularisers: the M preferences ``(M, T)``, the task losses at
    each ``(M, T)`` (before loss balancing), the model, and the random stream of the regulariser."""

    prefs: Tensor
    losses: Tensor
    pm: ParetoModel | None = None
    generator: torch.Generator | None = None


class Regulariser:
    """A penalty computed from one step, added to the objective as ``coefficient · penalty(step)``.

    ``stream`` names the random stream the loss derives for it (per run seed and epoch), for regularisers that
    draw at random; ``name`` is how its value is logged.
    """

    stream: str = ""

    def __init__(self, coefficient: float = 1.0) -> None:
        if not (isinstance(coefficient, (int, float)) and math.isfinite(coefficient) and coefficient >= 0):
            raise ParetorchError(f"{type(self).__name__} coefficient must be a finite number >= 0, got {coefficient!r}")
        self.coefficient = float(coefficient)

    @property
    def name(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def penalty(self, step: StepOutputs) -> Tensor:
        """The penalty (without the coefficient) for one step."""
        raise NotImplementedError

    def __call__(self, step: StepOutputs) -> Tensor:
        return self.coefficient * self.penalty(step)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.coefficient:g})"


def _edges(weights: Tensor, kind: Literal["full", "lexicographic"]) -> tuple[Tensor, Tensor]:
    # Edge (i, j) whenever preference i puts strictly less weight on the task than preference j.
    if kind == "full":
        lower, higher = torch.nonzero(weights[:, None] < weights[None, :], as_tuple=True)
        return lower, higher
    order = torch.argsort(weights, stable=True)
    lower, higher = order[:-1], order[1:]
    strict = weights[lower] < weights[higher]
    return lower[strict], higher[strict]


def multi_forward_penalty(prefs: Tensor, losses: Tensor, edges: Literal["full", "lexicographic"] = "lexicographic"
                          ) -> Tensor:
    """PaMaL's multi-forward regulariser (Dimitriadis et al. 2023, Eq. 3), penalising *violations*.

    ``prefs`` (M, T) are the preferences of one step and ``losses`` (M, T) the task losses at each. For task
    t, every edge (i, j) with λ_{i,t} < λ_{j,t} says that j, which weighs task t more, should not have a
    larger loss on it: the term is ``log( mean_{(i,j) ∈ E_t} exp([L_t(λ_j) − L_t(λ_i)]_+) )``, summed
    over tasks. It is zero when every ordering holds and positive otherwise. (The paper prints the
    hinge as [L_t(α_i) − L_t(α_j)]_+, which penalises the expected ordering; its public code inherits that.)
    ``edges="full"`` uses every such pair; ``"lexicographic"`` keeps one outgoing edge per node, to the next
    preference in the order of task t's weight (W − 1 edges, the paper's choice).

    >>> prefs = torch.tensor([[0.2, 0.8], [0.8, 0.2]])
    >>> multi_forward_penalty(prefs, torch.tensor([[1.0, 0.3], [1.5, 0.9]]))
    tensor(0.5000)
    """
    if prefs.shape != losses.shape or prefs.dim() != 2:
        raise ParetorchError(f"prefs {tuple(prefs.shape)} and losses {tuple(losses.shape)} must both be (M, T)")
    if edges not in ("full", "lexicographic"):
        raise ParetorchError(f"edges must be 'full' or 'lexicographic', got {edges!r}")
    total = losses.new_zeros(())
    for task in range(prefs.shape[1]):
        lower, higher = _edges(prefs[:, task], edges)
        if lower.numel() == 0:
            continue
        violation = torch.relu(losses[higher, task] - losses[lower, task])
        total = total + torch.logsumexp(violation, dim=0) - torch.log(torch.tensor(float(lower.numel())))
    return total


def orthogonality_penalty(deltas: Mapping[str, Tensor], subset_size: int | None = 3,
                          generator: torch.Generator | None = None, eps: float = 1e-12) -> Tensor:
    """LORPMAN's orthogonality regulariser (Chen & Kwok 2024, Eq. 7; Eq. 8 when there are more than 3 tasks).

    For each layer, the T deltas ``B_i A_i`` are flattened and normalised into the columns of W, and the
    layer's term is ``‖WᵀW − I‖_F²``; the result is the mean over layers. With more than ``subset_size``
    tasks, one random subset of that many tasks (shared by all layers) is used per call, as Eq. 8 does.
    Deltas that are still zero (adapters start at zero) have no direction and add nothing.

    >>> orthogonality_penalty({"layer": torch.eye(2).view(2, 1, 2)})
    tensor(0.)
    """
    if not deltas:
        raise ParetorchError("orthogonality_penalty needs at least one low-rank layer (lowrank() model)")
    tasks = next(iter(deltas.values())).shape[0]
    chosen = None
    if subset_size is not None and tasks > subset_size:
        chosen = torch.randperm(tasks, generator=generator)[:subset_size]
    terms = []
    for delta in deltas.values():
        flat = delta.reshape(delta.shape[0], -1)
        if chosen is not None:
            flat = flat[chosen.to(flat.device)]
        columns = flat / flat.norm(dim=1, keepdim=True).clamp_min(eps)
        gram = columns @ columns.T
        # With unit columns the diagonal of WᵀW is exactly I, so ‖WᵀW − I‖² is the off-diagonal sum of
        # squares; written that way a still-zero delta adds 0 rather than a constant 1.
        off_diagonal = gram - torch.diag_embed(torch.diagonal(gram))
        terms.append((off_diagonal**2).sum())
    return torch.stack(terms).mean()


class MultiForwardOrdering(Regulariser):
    """PaMaL's multi-forward ordering penalty (Eq. 3; see :func:`multi_forward_penalty`). A step with a single
    preference has no pair to compare and adds nothing."""

    def __init__(self, coefficient: float = 1.0, edges: Literal["full", "lexicographic"] = "lexicographic") -> None:
        super().__init__(coefficient)
        if edges not in ("full", "lexicographic"):
            raise ParetorchError(f"edges must be 'full' or 'lexicographic', got {edges!r}")
        self.edges = edges

    def penalty(self, step: StepOutputs) -> Tensor:
        if step.prefs.shape[0] < 2:
            return step.losses.new_zeros(())
        return multi_forward_penalty(step.prefs, step.losses, self.edges)


class Orthogonality(Regulariser):
    """LORPMAN's orthogonality of the low-rank task deltas (Eq. 7, Eq. 8's random task subsets of
    ``subset_size`` above that many tasks; see :func:`orthogonality_penalty`). Needs a ``lowrank`` model."""

    stream = "orthogonality"

    def __init__(self, coefficient: float = 1.0, subset_size: int | None = 3) -> None:
        super().__init__(coefficient)
        self.subset_size = subset_size

    def penalty(self, step: StepOutputs) -> Tensor:
        if step.pm is None:
            raise ParetorchError("Orthogonality needs the model of the step")
        return orthogonality_penalty(lowrank_deltas(step.pm), self.subset_size, step.generator)


class CosineAlignment(Regulariser):
    """COSMOS's cosine term (Ruchte & Grabocka 2021): −Σ_j cos(L(λ_j), d(λ_j)) pulls each loss vector towards a
    ray d(λ) set by its preference, so that the objective is λᵀL − μ·cos(L, d(λ)) with μ the coefficient.

    ``target="preference"`` is COSMOS's own ray, d(λ) = λ. Then the two terms pull a task's loss in opposite
    directions: λᵀL rewards a low loss where λ_t is large, the cosine a loss vector parallel to λ, that is a
    *high* L_t where λ_t is large. When the cosine wins (small losses late in training make its gradient, of
    order 1/‖L‖, large), more weight on a task gives it a worse loss: on MultiMNIST the front's per-task
    Spearman correlation is negative, in the official COSMOS code too (README, "Which method to choose").

    ``target="inverse"`` aligns the losses with EPO's preference ray instead, d(λ)_t ∝ 1/λ_t, on which every
    λ_t·L_t is equal (Mahapatra & Rajan 2020's exact Pareto optimality, PHN-EPO's ray): a large weight then
    asks for a small loss in both terms. For two tasks it is λ reversed. A zero weight gives that task's
    axis (the other losses are asked to be negligible beside it).

    >>> step = StepOutputs(prefs=torch.tensor([[0.8, 0.2]]), losses=torch.tensor([[0.1, 0.4]]))
    >>> CosineAlignment(1.0)(step) > CosineAlignment(1.0, target="inverse")(step)  # (0.1, 0.4) ∥ (0.2, 0.8)
    tensor(True)
    """

    def __init__(self, coefficient: float = 1.0, target: Literal["preference", "inverse"] = "preference") -> None:
        super().__init__(coefficient)
        if target not in ("preference", "inverse"):
            raise ParetorchError(f"CosineAlignment target must be 'preference' or 'inverse', got {target!r}")
        self.target = target

    def penalty(self, step: StepOutputs) -> Tensor:
        return -torch.cosine_similarity(step.losses, self.ray(step.prefs), dim=1).sum()

    def ray(self, prefs: Tensor) -> Tensor:
        """The direction d(λ) each preference's loss vector is pulled towards, one row per preference."""
        if self.target == "preference":
            return prefs
        # 1/λ times the row's smallest weight (a zero clamped to the smallest positive float), so that every
        # entry is finite and at most 1 whatever T; a zero weight then gets the whole ray, the others about 0.
        smallest = torch.finfo(prefs.dtype).tiny
        inverse = prefs.clamp_min(smallest).reciprocal()
        return inverse / inverse.amax(dim=1, keepdim=True)

    def __repr__(self) -> str:
        extra = "" if self.target == "preference" else f", target={self.target!r}"
        return f"{type(self).__name__}({self.coefficient:g}{extra})"
