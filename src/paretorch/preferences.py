"""Preferences: vectors on the probability simplex, one weight per task.

Evaluation grids, training-time samplers (one interface: ``sample(step, total_steps) -> Tensor[M, T]``),
Pareto MTL's unit preference vectors, and the validator for user input.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from paretorch.errors import ParetorchError

__all__ = [
    "AnnealedDirichlet",
    "AnnealedGrid",
    "Dirichlet",
    "Fixed",
    "PreferenceSampler",
    "as_preference",
    "das_dennis",
    "simplex_grid",
    "symmetric_grid_size",
    "unit_vectors",
]

_SUM_TOLERANCE = 1e-4


def _das_dennis_size(num_tasks: int, partitions: int) -> int:
    return math.comb(partitions + num_tasks - 1, num_tasks - 1)


def das_dennis(num_tasks: int, partitions: int) -> Tensor:
    """All points of the simplex whose coordinates are multiples of ``1 / partitions``.

    There are C(partitions + T - 1, T - 1) of them, vertices included.

    >>> das_dennis(3, 2).tolist()[:3]
    [[0.0, 0.0, 1.0], [0.0, 0.5, 0.5], [0.0, 1.0, 0.0]]
    """
    if num_tasks < 1 or partitions < 1:
        raise ParetorchError(f"das_dennis needs num_tasks >= 1 and partitions >= 1, got {num_tasks}, {partitions}")
    rows = []
    # Stars and bars: choose T-1 bar positions among partitions + T - 1 slots.
    for bars in itertools.combinations(range(partitions + num_tasks - 1), num_tasks - 1):
        edges = (-1, *bars, partitions + num_tasks - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(num_tasks)])
    return torch.tensor(rows, dtype=torch.float64) / partitions


@lru_cache(maxsize=32)
def _maximin_grid(num_tasks: int, n_points: int) -> np.ndarray:
    # Greedy farthest-point selection from a fixed pool of strictly interior candidates, starting from the
    # vertices and the centre. Face points (edge midpoints …) are left out of the pool on purpose: in high
    # dimension they are the farthest from everything and would crowd out every interior trade-off.
    rng = np.random.default_rng(20231)
    candidates = []
    for partitions in range(num_tasks + 1, 64):
        if _das_dennis_size(num_tasks, partitions) > 4000:
            break
        lattice = das_dennis(num_tasks, partitions).numpy()
        candidates.append(lattice[(lattice > 0).all(axis=1)])
    for concentration in (0.3, 1.0, 3.0):
        candidates.append(rng.dirichlet(np.full(num_tasks, concentration), size=max(2000, 10 * n_points)))
    pool = np.concatenate(candidates)
    pool = pool[(pool > 1e-6).all(axis=1)]
    chosen = [*np.eye(num_tasks), np.full(num_tasks, 1.0 / num_tasks)][:n_points]
    nearest = np.min(np.linalg.norm(pool[:, None, :] - np.stack(chosen)[None], axis=-1), axis=1)
    while len(chosen) < n_points:
        index = int(np.argmax(nearest))
        chosen.append(pool[index])
        nearest = np.minimum(nearest, np.linalg.norm(pool - pool[index], axis=1))
    return np.stack(chosen)


def simplex_grid(num_tasks: int, n_points: int | None = None) -> Tensor:
    """The evaluation grid of preferences used by the papers (PaMaL App. B, LORPMAN §4).

    - 2 tasks: ``n_points`` (default 11) evenly spaced points ``(w, 1 - w)``, vertices included, ordered by
      increasing weight on task 1.
    - 3 tasks: the Das-Dennis lattice with 10 partitions (66 points) by default; any ``n_points`` that is a
      lattice size uses that lattice.
    - more tasks, or a size that is no lattice size: ``n_points`` (default 100) chosen by greedy maximin
      (farthest-point) selection that starts from the T vertices and the centre, over a fixed pool of strictly
      interior candidates (the interior points of Das-Dennis lattices of up to 4,000 points, and seeded
      Dirichlet samples with concentrations 0.3, 1 and 3). A plain Das-Dennis lattice degenerates for many
      tasks: with 40 tasks and 100 points it could only hold the vertices and edge midpoints, never an
      interior point. The result is deterministic.

    >>> simplex_grid(2).shape, simplex_grid(3).shape, simplex_grid(40).shape
    (torch.Size([11, 2]), torch.Size([66, 3]), torch.Size([100, 40]))
    """
    if num_tasks < 2:
        raise ParetorchError(f"simplex_grid needs at least 2 tasks, got {num_tasks}")
    if n_points is None:
        n_points = {2: 11, 3: 66}.get(num_tasks, 100)
    if n_points < num_tasks:
        raise ParetorchError(
            f"simplex_grid needs n_points >= num_tasks ({num_tasks}) to hold the vertices, got {n_points}"
        )
    if num_tasks == 2:
        weights = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
        return torch.stack([weights, 1.0 - weights], dim=1).float()
    for partitions in range(1, n_points):
        size = _das_dennis_size(num_tasks, partitions)
        if size == n_points:
            return das_dennis(num_tasks, partitions).float()
        if size > n_points:
            break
    return torch.from_numpy(_maximin_grid(num_tasks, n_points)).float()


def unit_vectors(num_tasks: int, k: int) -> Tensor:
    """Pareto MTL's evenly distributed unit preference vectors (Lin et al. 2019, §4.2.3), shape ``(k, T)``.

    For 2 tasks: ``(cos(iπ / 2(k-1)), sin(iπ / 2(k-1)))`` for ``i = 0 … k-1``, so the two axes are included
    (the paper's K + 1 vectors for K = k - 1). For 3+ tasks: the points of ``simplex_grid(num_tasks, k)``
    scaled to unit Euclidean norm, which spreads them over the positive orthant of the unit sphere.

    >>> unit_vectors(2, 3)
    tensor([[1.0000, 0.0000],
            [0.7071, 0.7071],
            [0.0000, 1.0000]])
    """
    if k < 1:
        raise ParetorchError(f"unit_vectors needs k >= 1, got {k}")
    if num_tasks == 2:
        if k == 1:
            return torch.full((1, 2), 1.0 / math.sqrt(2.0))
        angles = torch.arange(k, dtype=torch.float64) * math.pi / (2 * (k - 1))
        vectors = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        # cos(π/2) is 6e-17 in floating point; the axis vectors should be exact.
        return torch.where(vectors.abs() < 1e-12, 0.0, vectors).float()
    grid = simplex_grid(num_tasks, k) if k >= num_tasks else torch.eye(num_tasks)[:k]
    return grid / grid.norm(dim=1, keepdim=True)


def as_preference(
    x: Tensor | Sequence[float] | np.ndarray,
    num_tasks: int,
    allow_outside_simplex: bool = False,
) -> Tensor:
    """Validate a user's preference and return it as a float tensor of shape ``(T,)`` or ``(B, T)``.

    Raises a one-line :class:`ParetorchError` (a ``ValueError``) naming the problem: wrong shape, non-finite
    entries, negative weights, or rows that do not sum to 1. PaLoRA's pseudo-preferences outside the simplex
    (§6.2) pass only with ``allow_outside_simplex=True`` (shape and finiteness are still checked).

    >>> as_preference([0.25, 0.75], 2)
    tensor([0.2500, 0.7500])
    """
    pref = torch.as_tensor(x).detach().clone() if not isinstance(x, Tensor) else x
    if not pref.is_floating_point():
        pref = pref.float()
    if pref.dim() not in (1, 2) or pref.shape[-1] != num_tasks:
        raise ParetorchError(
            f"preference has shape {tuple(pref.shape)}; expected ({num_tasks},) or (batch, {num_tasks}), "
            f"one weight per task"
        )
    if not torch.isfinite(pref).all():
        raise ParetorchError("preference contains NaN or infinite values; give finite weights")
    if allow_outside_simplex:
        return pref
    if (pref < 0).any():
        raise ParetorchError(
            f"preference has negative weights (min {pref.min().item():.4g}); weights must be >= 0 "
            "(pass allow_outside_simplex=True for PaLoRA-style pseudo-preferences)"
        )
    sums = pref.sum(dim=-1)
    bad = (sums - 1.0).abs() > _SUM_TOLERANCE
    if bad.any():
        worst = sums[bad].flatten()[0].item()
        raise ParetorchError(
            f"preference weights sum to {worst:.6g}, not 1; normalise them (divide by their sum)"
        )
    return pref


@runtime_checkable
class PreferenceSampler(Protocol):
    """Which preferences a training step uses: ``sample(step, total_steps, generator)`` returns ``(M, T)``.

    ``generator`` is the caller's random stream (the :class:`~paretorch.Trainer` owns one per run and re-derives
    it every epoch, so resumed runs draw the same preferences); without one a sampler uses its own.
    """

    num_tasks: int

    def sample(self, step: int, total_steps: int, generator: torch.Generator | None = None) -> Tensor: ...


def _progress(step: int, total_steps: int) -> float:
    # τ ∈ [0, 1]: 0 at the first step, 1 at the last one.
    if total_steps <= 1:
        return 1.0
    return min(max(step / (total_steps - 1), 0.0), 1.0)


class Dirichlet:
    """``m`` preferences drawn i.i.d. from Dirichlet(p·1) each step (PaMaL §4.2, LORPMAN §3.2).

    ``p`` may be a scalar or a length-T concentration vector. ``generator`` makes the draws reproducible.

    >>> Dirichlet(3, p=1.0, m=4, generator=torch.Generator().manual_seed(0)).sample(0, 10).shape
    torch.Size([4, 3])
    """

    def __init__(
        self, num_tasks: int, p: float | Sequence[float] = 1.0, m: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        concentration = torch.as_tensor(p, dtype=torch.float64).expand(num_tasks).clone()
        if (concentration <= 0).any():
            raise ParetorchError(f"Dirichlet concentration must be > 0, got {p}")
        self.num_tasks = num_tasks
        self.m = m
        self.concentration = concentration
        self.generator = generator

    def sample(self, step: int, total_steps: int, generator: torch.Generator | None = None) -> Tensor:
        return _dirichlet(self.concentration, self.m, generator if generator is not None else self.generator)


def _dirichlet(concentration: Tensor, m: int, generator: torch.Generator | None) -> Tensor:
    # Normalised Gamma draws: torch.distributions has no generator argument, and seeded runs must resume exactly.
    gammas = torch._standard_gamma(concentration.expand(m, -1).contiguous(), generator=generator)
    return (gammas / gammas.sum(dim=1, keepdim=True)).float()


def symmetric_grid_size(num_tasks: int) -> int:
    """The size of PaLoRA's default ray grid (:class:`AnnealedGrid` with ``m`` unset): a point at each vertex, and
    a grid that is the same for every task (no task has a point another lacks; PaLoRA's "evenly spaced" rays).

    - 2 tasks: 4 (the two ends and the thirds), the 4 rays of the official code's MultiMNIST runs; 5 (the ends,
      the middle and the quarters) before 2026-12-06, which ordered its fronts less (README, PaLoRA).
    - 3 tasks: 6, the Das-Dennis lattice with 2 partitions (vertices and edge midpoints).
    - 4 tasks or more: T + 1, every vertex and the centre.

    ``simplex_grid(T, symmetric_grid_size(T))`` is that grid. Other counts are not: 5 points for 3 tasks are the
    vertices, the centre and one point between tasks 1 and 2, and T points from 5 tasks are the vertices alone.

    >>> [symmetric_grid_size(t) for t in (2, 3, 4, 10)]
    [4, 6, 5, 11]
    """
    if num_tasks < 2:
        raise ParetorchError(f"symmetric_grid_size needs at least 2 tasks, got {num_tasks}")
    return {2: 4, 3: 6}.get(num_tasks, num_tasks + 1)


class AnnealedGrid:
    """PaLoRA's deterministic annealed schedule (Dimitriadis et al. 2025, Eq. 3).

    ``m`` base rays λ̃ evenly spread on the simplex (``simplex_grid(T, m)``) are annealed at progress
    τ ∈ [0, 1] as ``λ_m(τ) = λ̃_m^{τ'} / Σ_t λ̃_{m,t}^{τ'}`` with ``τ' = τ / Q`` (``temperature`` = Q).
    At τ = 0 every ray is the centre of the simplex; at τ = 1 and Q = 1 they are the base rays; a larger Q
    keeps them nearer the centre, a Q below 1 pushes them past the base rays towards the vertices (the
    official code's power 5τ is Q = 0.2). No randomness.

    ``m`` left unset is :func:`symmetric_grid_size` (T): a grid that treats every task alike. A count that is no
    such grid (5 rays for 3 tasks: the vertices, the centre and one ray between tasks 1 and 2) favours some tasks,
    and with fewer rays than tasks the grid holds only the first ``m`` vertices, so the later tasks never get a
    ray of their own.

    ``margin`` moves the base rays off the faces, ``λ̃ ← margin + (1 − T·margin)·λ̃`` (the official code's
    ``linspace(0.01, 0.99)`` is margin 0.01): a base ray on a face has a zero weight, and 0^τ' = 0 for every
    τ' > 0, so without a margin such a ray jumps to the face at the first step instead of moving there as
    training proceeds.

    ``per_step`` (default: all ``m``) is the budget of forward passes per step, PaLoRA's M. Step s trains rays
    ``(s + ⌊j·m / per_step⌋) mod m`` for ``j < per_step``: rays spread over the grid (not a block of neighbours,
    which with vertices first would train a few tasks at a time), each trained equally often (``per_step``
    times in every m steps), so the grid still treats every task alike at a fraction of the cost per step
    when it is large (T + 1 rays for T tasks).

    >>> AnnealedGrid(2, m=3, temperature=1.0).sample(0, 100).tolist()
    [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]
    >>> AnnealedGrid(2, m=5, temperature=1.0, per_step=2).sample(99, 100).tolist()  # rays 4 and 1 of 0-4
    [[1.0, 0.0], [0.25, 0.75]]
    """

    annealed = True  # its preferences depend on the progress step / total_steps

    def __init__(self, num_tasks: int, m: int | None = None, temperature: float = 1.0, margin: float = 0.0,
                 per_step: int | None = None) -> None:
        if m is None:
            m = symmetric_grid_size(num_tasks)
        if per_step is not None and per_step < 1:
            raise ParetorchError(f"AnnealedGrid needs per_step >= 1 rays, got {per_step}")
        if temperature <= 0:
            raise ParetorchError(f"AnnealedGrid temperature must be > 0, got {temperature}")
        if not 0 <= margin < 1 / num_tasks:
            raise ParetorchError(f"AnnealedGrid margin must be in [0, 1/T) = [0, {1 / num_tasks:.3g}), got {margin}")
        if m < 1:
            raise ParetorchError(f"AnnealedGrid needs m >= 1 rays, got {m}")
        self.num_tasks = num_tasks
        self.m = m
        self.temperature = temperature
        # With fewer rays than tasks the grid cannot hold every vertex: fall back to the first m vertices.
        grid = simplex_grid(num_tasks, m).double() if m >= num_tasks else torch.eye(num_tasks, dtype=torch.float64)[:m]
        self.margin = margin
        self.base = margin + (1 - num_tasks * margin) * grid
        self.per_step = m if per_step is None else min(per_step, m)
        self._offsets = torch.arange(self.per_step) * m // self.per_step

    def sample(self, step: int, total_steps: int, generator: torch.Generator | None = None) -> Tensor:
        exponent = _progress(step, total_steps) / self.temperature
        base = self.base
        if self.per_step < self.m:  # this step's share of the grid, in turn (a function of the step alone)
            base = base[(step + self._offsets) % self.m]
        # torch defines 0 ** 0 = 1, which is what Eq. 3 needs at τ = 0 for rays on a face.
        powered = base.pow(exponent)
        return (powered / powered.sum(dim=1, keepdim=True)).float()


class AnnealedDirichlet:
    """PaLoRA App. D's random annealed schedule: ``m`` draws from Dirichlet(p(1 − τ)·1 + floor).

    The concentration shrinks as training proceeds, so draws move from the centre to the faces; ``floor``
    (default 0.05) keeps it strictly positive at τ = 1, where Dirichlet(0) is undefined.
    """

    annealed = True

    def __init__(
        self, num_tasks: int, p: float = 1.0, m: int = 1, floor: float = 0.05,
        generator: torch.Generator | None = None,
    ) -> None:
        if p <= 0 or floor <= 0:
            raise ParetorchError(f"AnnealedDirichlet needs p > 0 and floor > 0, got p={p}, floor={floor}")
        self.num_tasks = num_tasks
        self.p = p
        self.m = m
        self.floor = floor
        self.generator = generator

    def concentration(self, step: int, total_steps: int) -> float:
        return self.p * (1.0 - _progress(step, total_steps)) + self.floor

    def sample(self, step: int, total_steps: int, generator: torch.Generator | None = None) -> Tensor:
        alpha = torch.full((self.num_tasks,), self.concentration(step, total_steps), dtype=torch.float64)
        return _dirichlet(alpha, self.m, generator if generator is not None else self.generator)


class Fixed:
    """The same preferences every step (linear scalarisation runs, Pareto MTL's vectors, tests).

    >>> Fixed([[1.0, 0.0], [0.0, 1.0]]).sample(3, 10).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, prefs: Tensor | Sequence[Sequence[float]] | Sequence[float]) -> None:
        tensor = torch.as_tensor(prefs, dtype=torch.float32)
        if tensor.dim() == 1:
            tensor = tensor.unsqueeze(0)
        self.prefs = as_preference(tensor, tensor.shape[-1])
        self.num_tasks = tensor.shape[-1]

    def sample(self, step: int, total_steps: int, generator: torch.Generator | None = None) -> Tensor:
        return self.prefs.clone()
