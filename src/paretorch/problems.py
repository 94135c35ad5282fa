"""Differentiable multi-objective test problems with known Pareto fronts.

Each problem maps a batch of parameter vectors ``theta`` of shape ``(B, n)`` (or one vector ``(n,)``) to the
loss vectors ``(B, T)`` (or ``(T,)``), in torch so that gradients flow. ``pareto_set(k)`` samples the known
Pareto set and ``pareto_front(k)`` its image, a sampled front for IGD.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["ConcaveProblem", "ProblemModel", "SineProblem", "TestProblem", "TwoParameterToy"]


class TestProblem(ABC):
    """A multi-objective problem: ``num_params`` inputs, ``num_tasks`` losses to minimise."""

    num_params: int
    num_tasks: int = 2

    @abstractmethod
    def losses(self, theta: Tensor) -> Tensor:
        """Loss vectors ``(B, T)`` for parameters ``(B, n)``."""

    @abstractmethod
    def pareto_set(self, k: int = 1000) -> Tensor:
        """``k`` points of the Pareto set, ordered from task 1's optimum towards task 2's."""

    def __call__(self, theta: Tensor) -> Tensor:
        single = theta.dim() == 1
        batch = theta.unsqueeze(0) if single else theta
        if batch.shape[-1] != self.num_params:
            raise ValueError(f"{type(self).__name__} takes {self.num_params} parameters, got {batch.shape[-1]}")
        out = self.losses(batch)
        return out[0] if single else out

    def pareto_front(self, k: int = 1000) -> Tensor:
        """The losses of ``pareto_set(k)``: a sampled Pareto front, shape ``(k, T)``."""
        with torch.no_grad():
            return self(self.pareto_set(k))


class TwoParameterToy(TestProblem):
    """The two-parameter toy problem of Liu et al. 2021 used by PaMaL and LORPMAN (App. D.2).

    Its Pareto set has no closed form. On it the gradient in θ¹ vanishes for the scalarisation
    w·f₁ + (1 − w)·f₂ exactly at θ¹ = 7(2w − 1), where θ² then minimises the scalarisation (a 1-D problem,
    solved by dense search and golden-section refinement in float64). ``pareto_set`` sweeps w and keeps the
    non-dominated solutions; the front is convex here, so the sweep covers all of it.

    >>> toy = TwoParameterToy()
    >>> toy(torch.tensor([7.0, -8.0]))
    tensor([-19.9866,  -0.3997])
    """

    num_params = 2

    def losses(self, theta: Tensor) -> Tensor:
        x, y = theta[:, 0], theta[:, 1]
        floor = torch.tensor(5e-6, dtype=theta.dtype, device=theta.device)
        h1 = torch.log(torch.maximum((0.5 * (-x - 7) - torch.tanh(-y)).abs(), floor)) + 6
        h2 = torch.log(torch.maximum((0.5 * (-x + 3) - torch.tanh(-y) + 2).abs(), floor)) + 6
        g1 = ((-x + 7) ** 2 + 0.1 * (-y - 8) ** 2) / 10 - 20
        g2 = ((-x - 7) ** 2 + 0.1 * (-y - 8) ** 2) / 10 - 20
        c1 = torch.clamp(torch.tanh(0.5 * y), min=0)
        c2 = torch.clamp(torch.tanh(-0.5 * y), min=0)
        return torch.stack([c1 * h1 + c2 * g1, c1 * h2 + c2 * g2], dim=1)

    def pareto_set(self, k: int = 1000) -> Tensor:
        return torch.from_numpy(_toy_pareto_set(k)).float()


def _toy_scalarised(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # On the Pareto set y < 0, where c1 = 0 and f_i = c2 · g_i.
    c2 = np.tanh(-0.5 * y)
    g1 = ((7 - x) ** 2 + 0.1 * (y + 8) ** 2) / 10 - 20
    g2 = ((x + 7) ** 2 + 0.1 * (y + 8) ** 2) / 10 - 20
    return c2 * (w * g1 + (1 - w) * g2)


@lru_cache(maxsize=8)
def _toy_pareto_set(k: int) -> np.ndarray:
    w = np.linspace(1.0, 0.0, k)
    x = 7.0 * (2.0 * w - 1.0)
    coarse = np.linspace(-20.0, -0.01, 4000)
    values = _toy_scalarised(w[:, None], x[:, None], coarse[None, :])
    best = coarse[np.argmin(values, axis=1)]
    low, high = best - 0.01, best + 0.01
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        left_better = _toy_scalarised(w, x, a) < _toy_scalarised(w, x, b)
        high = np.where(left_better, b, high)
        low = np.where(left_better, low, a)
    return np.stack([x, (low + high) / 2], axis=1)


class ConcaveProblem(TestProblem):
    """Pareto MTL's synthetic problem (Lin et al. 2019, Eq. 19) and its unbalanced variant (Eq. 22).

    ``f₁(x) = a₁ − a₁·exp(−‖x − 1/√d‖²)``, ``f₂(x) = a₂ − a₂·exp(−‖x + 1/√d‖²)``: a concave front that
    linear scalarisation cannot reach inside. The Pareto set is the segment between the two minimisers,
    ``x = t·1/√d`` for ``t ∈ [−1, 1]``.

    >>> ConcaveProblem(d=20).pareto_front(3)
    tensor([[0.0000, 0.9817],
            [0.6321, 0.6321],
            [0.9817, 0.0000]])
    """

    def __init__(self, d: int = 20, a1: float = 1.0, a2: float = 1.0) -> None:
        self.num_params = d
        self.a1, self.a2 = a1, a2

    def losses(self, theta: Tensor) -> Tensor:
        shift = 1.0 / math.sqrt(self.num_params)
        f1 = self.a1 * (1 - torch.exp(-((theta - shift) ** 2).sum(dim=1)))
        f2 = self.a2 * (1 - torch.exp(-((theta + shift) ** 2).sum(dim=1)))
        return torch.stack([f1, f2], dim=1)

    def pareto_set(self, k: int = 1000) -> Tensor:
        t = torch.linspace(1.0, -1.0, k)
        return t[:, None].expand(k, self.num_params) / math.sqrt(self.num_params)


class SineProblem(TestProblem):
    """Controllable Pareto MTL's synthetic problem (Lin et al. 2020, App. D), ``n`` parameters (default 10).

    ``f₁ = 1 − exp(−(θ₁ − 1)² − Σ_{i≥2} (θᵢ − sin 5θ₁)² / (n − 1))``, ``f₂ = 1 − exp(−(θ₁ + 1)²)``.
    The Pareto set is the sine curve ``θᵢ = sin(5θ₁)`` for ``θ₁ ∈ [−1, 1]``; the front is concave.

    >>> SineProblem().pareto_front(2)
    tensor([[0.0000, 0.9817],
            [0.9817, 0.0000]])
    """

    def __init__(self, n: int = 10) -> None:
        if n < 2:
            raise ValueError(f"SineProblem needs n >= 2 parameters, got {n}")
        self.num_params = n

    def losses(self, theta: Tensor) -> Tensor:
        first, rest = theta[:, 0], theta[:, 1:]
        wiggle = ((rest - torch.sin(5 * first)[:, None]) ** 2).sum(dim=1) / (self.num_params - 1)
        f1 = 1 - torch.exp(-((first - 1) ** 2) - wiggle)
        f2 = 1 - torch.exp(-((first + 1) ** 2))
        return torch.stack([f1, f2], dim=1)

    def pareto_set(self, k: int = 1000) -> Tensor:
        first = torch.linspace(1.0, -1.0, k)
        rest = torch.sin(5 * first)[:, None].expand(k, self.num_params - 1)
        return torch.cat([first[:, None], rest], dim=1)


class ProblemModel(nn.Module):
    """A test problem as a "model": its parameters are θ and its T outputs are the T losses.

    Every parameterisation, objective and the :class:`~paretorch.training.Trainer` then apply unchanged, with
    :meth:`loss_fns` (each loss is the output itself) and :meth:`loader` (one dummy batch, so one epoch is one
    step). ``theta`` is the start. With ``layer=True`` θ is the weight of a bias-free ``Linear(1, n)`` applied to
    a column of ones, one row per input row: then ensembles and low-rank adapters can wrap it, and each row
    of a batch can carry its own preference (``multi_forward``).

    >>> model = ProblemModel(SineProblem(), torch.zeros(10))
    >>> [round(float(out[0].detach()), 4) for out in model(torch.zeros(3, 1))]
    [0.6321, 0.6321]
    >>> from paretorch import ensemble
    >>> pm = ensemble(ProblemModel(SineProblem(), torch.zeros(10), layer=True), 2)
    >>> [out.shape for out in pm.multi_forward(torch.zeros(1, 1), torch.tensor([[0.2, 0.8], [0.9, 0.1]]))]
    [torch.Size([2]), torch.Size([2])]
    """

    def __init__(self, problem: TestProblem, theta: Tensor, layer: bool = False) -> None:
        super().__init__()
        self.problem = problem
        start = theta.detach().clone().float().reshape(-1)
        if layer:
            self.layer = nn.Linear(1, start.numel(), bias=False)
            with torch.no_grad():
                self.layer.weight.copy_(start[:, None])
        else:
            self.theta = nn.Parameter(start)

    def current_theta(self) -> Tensor:
        """θ as a vector (for the ``layer`` form, the layer's weight column)."""
        return self.layer.weight[:, 0] if hasattr(self, "layer") else self.theta

    def forward(self, inputs: Tensor) -> list[Tensor]:
        if hasattr(self, "layer"):
            losses = self.problem(self.layer(torch.ones_like(inputs[:, :1])))  # (B, T): θ per row
            return list(losses.unbind(dim=1))
        losses = self.problem(self.theta)
        return [loss.expand(inputs.shape[0]) for loss in losses]

    @staticmethod
    def loss_fns(num_tasks: int = 2) -> list:
        """One loss function per task: the mean of that output (the target is ignored)."""
        return [_output_mean] * num_tasks

    @staticmethod
    def loader(num_tasks: int = 2) -> DataLoader:
        """One batch of one dummy input and ``num_tasks`` dummy targets."""
        return DataLoader(TensorDataset(torch.zeros(1, 1), torch.zeros(1, num_tasks)), batch_size=1)


def _output_mean(output: Tensor, target: Tensor) -> Tensor:
    del target
    return output.mean()
