"""Quality indicators of a learned Pareto front: hypervolume, non-dominance, IGD/IGD+, monotonicity.

Points are rows of an ``(n, d)`` array, one column per objective. Objectives are minimised unless
``maximize`` says otherwise (accuracy-type metrics are maximised, with reference point 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import moocore
import numpy as np
import torch
from numpy.typing import ArrayLike

from paretorch.errors import ParetorchError

__all__ = [
    "HypervolumeResult",
    "generational_distance",
    "hypervolume",
    "igd",
    "igd_plus",
    "nondominated",
    "spearman_monotonicity",
]

# moocore's exact algorithms are fast (well under a second for a few hundred points) up to this many objectives.
EXACT_MAX_OBJECTIVES = 8
# moocore's hv_approx handles at most this many objectives.
APPROX_MAX_OBJECTIVES = 31

HypervolumeMethod = Literal["auto", "exact", "approx", "monte-carlo"]


@dataclass(frozen=True)
class HypervolumeResult:
    """A hypervolume value and how it was obtained.

    ``method`` is ``"exact"`` (moocore), ``"approx"`` (moocore's deterministic ``hv_approx``, no error
    estimate) or ``"monte-carlo"`` (own estimator; ``std_error`` is its standard error).
    """

    value: float
    method: str
    ref: tuple[float, ...]
    maximize: bool
    std_error: float | None = None
    samples: int | None = None

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.value, "method": self.method, "ref": list(self.ref), "maximize": self.maximize,
            "std_error": self.std_error, "samples": self.samples,
        }


def _as_points(points: ArrayLike | torch.Tensor, name: str = "points") -> np.ndarray:
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().double().numpy()
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ParetorchError(f"{name} must be a non-empty (n, d) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ParetorchError(f"{name} contains NaN or infinite values; evaluate the model on finite metrics")
    return array


def _to_minimisation(points: np.ndarray, ref: np.ndarray, maximize: bool) -> tuple[np.ndarray, np.ndarray]:
    return (-points, -ref) if maximize else (points, ref)


def hypervolume(
    points: ArrayLike | torch.Tensor,
    ref: ArrayLike | float,
    maximize: bool = False,
    method: HypervolumeMethod = "auto",
    samples: int = 100_000,
    seed: int = 0,
) -> HypervolumeResult:
    """Hypervolume dominated by ``points`` and bounded by the reference point ``ref``.

    ``method="auto"`` picks exact computation (moocore) up to 8 objectives, moocore's deterministic
    ``hv_approx`` up to 31 (its limit), and an own Monte-Carlo estimator with a standard error above that
    (LORPMAN evaluates 40 CelebA tasks). Points that do not strictly dominate ``ref`` add nothing.

    >>> hypervolume([[1.0, 2.0], [2.0, 1.0]], ref=[3.0, 3.0]).value
    3.0
    >>> round(hypervolume([[0.9, 0.8]], ref=0.0, maximize=True).value, 6)
    0.72
    """
    array = _as_points(points)
    dim = array.shape[1]
    reference = np.broadcast_to(np.asarray(ref, dtype=np.float64), (dim,)).copy()
    minimised, ref_min = _to_minimisation(array, reference, maximize)
    inside = (minimised < ref_min).all(axis=1)
    if method == "auto":
        method = (
            "exact" if dim <= EXACT_MAX_OBJECTIVES else "approx" if dim <= APPROX_MAX_OBJECTIVES else "monte-carlo"
        )
    common = {"ref": tuple(reference.tolist()), "maximize": maximize}
    if not inside.any():
        return HypervolumeResult(0.0, method, **common)
    minimised = minimised[inside]
    if method == "exact":
        return HypervolumeResult(float(moocore.hypervolume(minimised, ref=ref_min)), "exact", **common)
    if method == "approx":
        if dim > APPROX_MAX_OBJECTIVES:
            raise ParetorchError(
                f"moocore's hv_approx handles at most 31 objectives, got {dim}; use method='monte-carlo'"
            )
        value = moocore.hv_approx(minimised, ref=ref_min, nsamples=samples)
        return HypervolumeResult(float(value), "approx", samples=samples, **common)
    if method == "monte-carlo":
        value, error = _monte_carlo_hypervolume(minimised, ref_min, samples, seed)
        return HypervolumeResult(value, "monte-carlo", std_error=error, samples=samples, **common)
    raise ParetorchError(f"unknown hypervolume method {method!r}; use 'auto', 'exact', 'approx' or 'monte-carlo'")


def _monte_carlo_hypervolume(points: np.ndarray, ref: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    # Karp-Luby estimator over the union of the boxes [p_i, ref]: pick a box with probability proportional
    # to its volume, draw z uniformly in it, and average 1 / (number of boxes that hold z). The estimate is
    # unbiased and its relative error stays bounded however many objectives there are, unlike uniform
    # sampling of the bounding box, whose hit rate vanishes in high dimension.
    log_volumes = np.log(ref - points).sum(axis=1)
    scale = log_volumes.max()
    weights = np.exp(log_volumes - scale)
    total = float(weights.sum())
    rng = np.random.default_rng(seed)
    chunk = max(1, min(samples, 4_000_000 // max(1, points.shape[0] * points.shape[1])))
    inverse_counts = np.empty(samples)
    done = 0
    while done < samples:
        size = min(chunk, samples - done)
        boxes = rng.choice(points.shape[0], size=size, p=weights / total)
        low = points[boxes]
        draws = low + rng.random(low.shape) * (ref - low)
        counts = (points[None, :, :] <= draws[:, None, :]).all(axis=2).sum(axis=1)
        inverse_counts[done : done + size] = 1.0 / counts
        done += size
    union = total * math.exp(scale)
    return union * float(inverse_counts.mean()), union * float(inverse_counts.std(ddof=1)) / math.sqrt(samples)


def nondominated(points: ArrayLike | torch.Tensor, maximize: bool = False) -> np.ndarray:
    """Boolean mask of the points that no other point dominates (duplicates of a non-dominated point stay).

    >>> nondominated([[1, 2], [2, 1], [2, 2]]).tolist()
    [True, True, False]
    """
    array = _as_points(points)
    return np.asarray(moocore.is_nondominated(array, maximise=maximize, keep_weakly=True), dtype=bool)


def igd(points: ArrayLike | torch.Tensor, front: ArrayLike | torch.Tensor, maximize: bool = False) -> float:
    """Inverted generational distance: mean distance from each point of the reference ``front`` to the nearest
    of ``points`` (both in objective space). Measures convergence and coverage together.

    >>> igd([[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]])
    0.0
    """
    return float(moocore.igd(_as_points(points), ref=_as_points(front, "front"), maximise=maximize))


def igd_plus(points: ArrayLike | torch.Tensor, front: ArrayLike | torch.Tensor, maximize: bool = False) -> float:
    """IGD+ (Ishibuchi et al. 2015): IGD with the dominance-compliant distance max(p − f, 0)."""
    return float(moocore.igd_plus(_as_points(points), ref=_as_points(front, "front"), maximise=maximize))


def generational_distance(points: ArrayLike | torch.Tensor, front: ArrayLike | torch.Tensor) -> float:
    """Mean distance from each of ``points`` to the nearest point of the reference ``front``: how far the learned
    solutions are from convergence, whatever their spread.

    >>> generational_distance([[0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]])
    0.0
    """
    learned, reference = _as_points(points), _as_points(front, "front")
    distances = np.linalg.norm(learned[:, None, :] - reference[None, :, :], axis=-1)
    return float(distances.min(axis=1).mean())


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # Ties share the mean of the ranks they span.
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rank_x, rank_y = _average_ranks(x), _average_ranks(y)
    rank_x -= rank_x.mean()
    rank_y -= rank_y.mean()
    denominator = math.sqrt(float((rank_x**2).sum() * (rank_y**2).sum()))
    return float("nan") if denominator == 0 else float((rank_x * rank_y).sum() / denominator)


def spearman_monotonicity(
    prefs: ArrayLike | torch.Tensor, values: ArrayLike | torch.Tensor, columns: Sequence[int] | None = None
) -> np.ndarray:
    """Per task t, the Spearman rank correlation between the weight λ_t along a grid and that task's metric.

    A well-behaved front moves each task's metric with its own weight (PaMaL App. B.4, PaLoRA §6.1): a loss
    should give a value near -1, an accuracy near +1. NaN where either column is constant.

    >>> spearman_monotonicity([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], [[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]]).tolist()
    [-1.0, -1.0]
    """
    weights, metrics = _as_points(prefs, "prefs"), _as_points(values, "values")
    if weights.shape != metrics.shape:
        raise ParetorchError(
            f"prefs {weights.shape} and values {metrics.shape} must have the same shape (grid points, tasks)"
        )
    tasks = range(weights.shape[1]) if columns is None else columns
    return np.array([_spearman(weights[:, t], metrics[:, t]) for t in tasks])
