"""Small quadratic programs over the simplex that gradient-based multi-objective methods solve every step.

``min_norm_weights`` is the MGDA dual (Désidéri 2012; Sener & Koltun 2018): the point of minimum norm in the
convex hull of the task gradients, given only their Gram matrix. ``pareto_mtl_weights`` is Pareto MTL's dual
(Lin et al. 2019, Eq. 14 with the ε-active set of Eq. 11), returned as the adaptive task weights of Eq. 18;
``pareto_mtl_feasibility_weights`` is the initial phase's constraint-only problem (Eq. 9);
``guarded_feasibility_weights`` is paretorch's step back into a preference region for generators (see there).
``epo_weights`` is Exact Pareto Optimal search's linear programme (Mahapatra & Rajan 2020), solved by scipy.

The QPs have as many variables as tasks plus active constraints (a handful), so they are solved in float64
with NumPy: a short run of accelerated projected gradient on the simplex finds a near-optimal support, then
primal active-set iterations (each an equality-constrained KKT linear system) end on the exact optimum,
degenerate Gram matrices included. The answer is checked against the KKT
conditions, ``(Gw)_i ≥ wᵀGw`` for all i with equality where ``w_i > 0``, and the tests verify them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from paretorch.errors import ParetorchError

__all__ = [
    "EPOWeights",
    "ParetoMTLWeights",
    "epo_weights",
    "guarded_feasibility_weights",
    "kkt_violation",
    "min_norm_weights",
    "pareto_mtl_feasibility_weights",
    "pareto_mtl_weights",
]


def _as_array(x: Tensor | np.ndarray | Sequence[float] | Sequence[Sequence[float]]) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _project_to_simplex(v: np.ndarray) -> np.ndarray:
    # Euclidean projection onto {w >= 0, Σw = 1} (Held et al. 1974; sort-based).
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    index = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - cumulative / index > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


def kkt_violation(gram: Tensor | np.ndarray, weights: Tensor | np.ndarray) -> float:
    """How far ``weights`` are from solving ``min wᵀGw`` over the simplex, relative to the Gram's scale.

    Zero at the optimum: every ``(Gw)_i`` is at least ``wᵀGw`` (no vertex direction decreases the
    objective), with equality on the support. Returns the largest violation of either condition, and of
    feasibility, divided by ``max |G_ii|``.
    """
    g, w = _as_array(gram), _as_array(weights)
    scale = max(float(np.abs(np.diag(g)).max()), 1e-300)
    gw = g @ w
    value = float(w @ gw)
    stationarity = max(0.0, float((value - gw).max()))
    complementarity = float((w * np.abs(gw - value)).max())
    feasibility = max(float(-w.min()), abs(float(w.sum()) - 1.0))
    return max(stationarity, complementarity) / scale + feasibility


def _solve_simplex_qp(gram: np.ndarray, iterations: int = 25, tolerance: float = 1e-8) -> np.ndarray:
    # A few accelerated projected-gradient steps find the support; the active-set polish makes it exact, so more
    # steps only cost time (4 × 4 Gram matrices: 0.77 ms per solve with 200 steps, 0.68 ms with 25, same residual).
    n = gram.shape[0]
    if gram.shape != (n, n) or n == 0:
        raise ParetorchError(f"the Gram matrix must be square and non-empty, got shape {gram.shape}")
    if not np.isfinite(gram).all():
        raise ParetorchError("the Gram matrix has NaN or infinite entries; check the task gradients")
    if n == 1:
        return np.ones(1)
    scale = float(np.abs(np.diag(gram)).max())
    if scale == 0.0:
        return np.full(n, 1.0 / n)
    g = (gram + gram.T) / (2.0 * scale)
    lipschitz = max(float(np.linalg.eigvalsh(g).max()), 1e-12)
    w = np.full(n, 1.0 / n)
    momentum, previous, t = w.copy(), w.copy(), 1.0
    for _ in range(iterations):
        w = _project_to_simplex(momentum - (g @ momentum) / lipschitz)
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum = w + ((t - 1.0) / t_next) * (w - previous)
        if np.abs(w - previous).max() < tolerance:
            break
        previous, t = w, t_next
    return _polish(g, w)


def _equality_qp(g: np.ndarray, support: np.ndarray) -> np.ndarray:
    # On the support S the optimum solves [G_SS 1; 1ᵀ 0][w_S; ν] = [0; 1]; lstsq handles a singular G_SS.
    size = int(support.sum())
    system = np.zeros((size + 1, size + 1))
    system[:size, :size] = g[np.ix_(support, support)]
    system[:size, size] = 1.0
    system[size, :size] = 1.0
    rhs = np.zeros(size + 1)
    rhs[size] = 1.0
    full = np.zeros(g.shape[0])
    full[support] = np.linalg.lstsq(system, rhs, rcond=None)[0][:size]
    return full


def _polish(g: np.ndarray, w: np.ndarray, tolerance: float = 1e-13) -> np.ndarray:
    # Primal active-set iterations from the projected-gradient answer: they end on the exact optimum of the
    # QP, where projected gradient alone stalls on degenerate (rank-deficient) Gram matrices.
    support = w > 1e-9
    w = np.where(support, w, 0.0)
    w /= w.sum()
    for _ in range(4 * g.shape[0] + 10):
        target = _equality_qp(g, support)
        if (target[support] < 0).any():
            # Ratio test: walk towards the target until the first weight reaches zero, drop it.
            step = target - w
            shrinking = support & (step < 0)
            ratios = np.where(shrinking, w / np.where(shrinking, -step, 1.0), np.inf)
            blocking = int(np.argmin(ratios))
            w = np.maximum(w + ratios[blocking] * step, 0.0)
            w[blocking] = 0.0
            w /= w.sum()
            support = w > 0
            continue
        w = target
        gw = g @ w
        gap = np.where(support, np.inf, gw - w @ gw)
        entering = int(np.argmin(gap))
        if gap[entering] >= -tolerance:
            break
        support[entering] = True
    return w


def min_norm_weights(gram: Tensor | np.ndarray | Sequence[Sequence[float]]) -> Tensor:
    """MGDA's weights: ``argmin_{w ∈ simplex} ‖Σ_i w_i g_i‖²`` given the Gram matrix ``G_ij = g_iᵀ g_j``.

    The combination ``d = −Σ w_i g_i`` is then a common descent direction of all tasks, or zero at a
    Pareto-stationary point. Returns a float64 tensor of length n.

    >>> min_norm_weights([[1.0, 0.0], [0.0, 4.0]])
    tensor([0.8000, 0.2000], dtype=torch.float64)
    """
    return torch.from_numpy(_solve_simplex_qp(_as_array(gram)))


@dataclass(frozen=True)
class ParetoMTLWeights:
    """The solution of Pareto MTL's dual for one subproblem.

    ``weights`` are the adaptive task weights α of Eq. 18 (they may be negative: an active constraint pushes
    a task away); ``task_multipliers`` are λ, ``constraint_multipliers`` are β (one per reference vector, zero
    where inactive), ``active`` marks the ε-active constraints of Eq. 11.
    """

    weights: Tensor
    task_multipliers: Tensor
    constraint_multipliers: Tensor
    active: Tensor


def _constraint_rows(
    losses: np.ndarray, refs: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    # G_j(θ) = (u_j − u_k)ᵀ L(θ); its gradient is Σ_i (u_j − u_k)_i ∇L_i, so it lives in task-gradient space.
    # G_k ≡ 0: the subproblem's own vector is no constraint, so its value is −∞ (never active, never violated).
    directions = refs - refs[k]
    values = directions @ losses
    values[k] = -np.inf
    return directions, values


def _check_pareto_mtl_input(
    losses: Tensor | np.ndarray | Sequence[float], gram: Tensor | np.ndarray, ref_vectors: Tensor | np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    loss_vec, g, refs = _as_array(losses).reshape(-1), _as_array(gram), _as_array(ref_vectors)
    tasks = loss_vec.shape[0]
    if g.shape != (tasks, tasks):
        raise ParetorchError(f"gram must be ({tasks}, {tasks}) for {tasks} losses, got {g.shape}")
    if refs.ndim != 2 or refs.shape[1] != tasks:
        raise ParetorchError(f"ref_vectors must be (K, {tasks}), got {refs.shape}")
    if not 0 <= k < refs.shape[0]:
        raise ParetorchError(f"k={k} is not the index of one of the {refs.shape[0]} reference vectors")
    norms = np.linalg.norm(refs, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ParetorchError("a reference vector is zero; preference directions must be non-zero")
    # Regions are defined by angles, so only the vectors' directions count (Pareto MTL normalises them too).
    return loss_vec, g, refs / norms


def pareto_mtl_weights(
    losses: Tensor | np.ndarray | Sequence[float],
    gram: Tensor | np.ndarray,
    ref_vectors: Tensor | np.ndarray,
    k: int,
    eps: float = 1e-3,
) -> ParetoMTLWeights:
    """Pareto MTL's adaptive task weights for subproblem ``k`` (Lin et al. 2019, Eq. 14 → Eq. 18).

    ``losses`` (T,) and the task-gradient Gram matrix ``gram`` (T, T) at the current parameters;
    ``ref_vectors`` (K, T) the preference vectors ``u``. Constraints ``G_j = (u_j − u_k)ᵀL ≤ 0`` with
    ``G_j ≥ −eps`` are active (Eq. 11). The dual (Eq. 14) is a min-norm problem over the task gradients and
    the active constraint gradients; the descent direction is ``−Σ α_i ∇L_i``.

    Equal losses sit on the border of region 0 (where L₁ ≥ L₂), so the constraint is active and the weights
    favour task 2, pushing the losses into the region:

    >>> refs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> pareto_mtl_weights([1.0, 1.0], torch.eye(2), refs, k=0).weights
    tensor([0.2000, 0.4000], dtype=torch.float64)
    """
    loss_vec, g, refs = _check_pareto_mtl_input(losses, gram, ref_vectors, k)
    directions, values = _constraint_rows(loss_vec, refs, k)
    return _min_norm_combination(g, directions, np.ones(loss_vec.shape[0], dtype=bool), values >= -eps)


def pareto_mtl_feasibility_weights(
    losses: Tensor | np.ndarray | Sequence[float],
    gram: Tensor | np.ndarray,
    ref_vectors: Tensor | np.ndarray,
    k: int,
) -> ParetoMTLWeights | None:
    """Task weights for Pareto MTL's initial phase (Eq. 9): descend on the violated constraints only.

    The violated set is ``I = {j : G_j ≥ 0, j ≠ k}``; returns ``None`` when it is empty, i.e. the current
    solution already lies in subproblem ``k``'s region and the main phase can start. Otherwise the weights
    ``α = Σ_j β_j (u_j − u_k)`` with β the min-norm multipliers over the violated constraints' gradients.
    """
    loss_vec, g, refs = _check_pareto_mtl_input(losses, gram, ref_vectors, k)
    directions, values = _constraint_rows(loss_vec, refs, k)
    violated = values >= 0
    return (_min_norm_combination(g, directions, np.zeros(loss_vec.shape[0], dtype=bool), violated)
            if violated.any() else None)


def guarded_feasibility_weights(
    losses: Tensor | np.ndarray | Sequence[float],
    gram: Tensor | np.ndarray,
    ref_vectors: Tensor | np.ndarray,
    k: int,
) -> ParetoMTLWeights | None:
    """A step back into region ``k`` that may not raise the losses which are already too large (paretorch's own).

    Pareto MTL's feasibility step (Eq. 9) descends on the violated constraints only, so it may reach the region
    by *raising* losses; a preference-conditioned generator shares parameters across preferences, and there those
    raises add up until every loss saturates. Eq. 11 alone cannot help either: it demands descent on every loss,
    so any Pareto-stationary point is a fixed point, inside the region or not. This step sits between the two,
    in the spirit of EPO's controlled ascent: the min-norm element over the violated constraints' gradients and
    the gradients of the tasks whose share of the loss vector exceeds the region's direction
    (``L_i / ‖L‖ > u_k,i``); the other tasks may rise. Returns ``None`` when no constraint is violated.

    >>> refs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> guarded_feasibility_weights([2.0, 1.0], torch.eye(2), refs, k=1).weights.round(decimals=6).tolist()
    [1.0, 0.0]
    >>> guarded_feasibility_weights([0.1, 1.0], torch.eye(2), refs, k=1) is None  # already in region 1
    True
    """
    loss_vec, g, refs = _check_pareto_mtl_input(losses, gram, ref_vectors, k)
    directions, values = _constraint_rows(loss_vec, refs, k)
    violated = values > 0
    if not violated.any():
        return None
    norm = np.linalg.norm(loss_vec)
    # Two unit vectors that differ have a coordinate where the first exceeds the second, so ``over`` is not empty.
    over = loss_vec / norm > refs[k] if norm > 0 else np.zeros_like(loss_vec, dtype=bool)
    return _min_norm_combination(g, directions, over, violated)


def _min_norm_combination(gram: np.ndarray, directions: np.ndarray, tasks: np.ndarray, constraints: np.ndarray
                          ) -> ParetoMTLWeights:
    # The min-norm element of the convex hull of the chosen task gradients (rows of the identity, in loss space)
    # and the chosen constraints' gradients (rows of ``directions``), as task weights with its multipliers.
    combination = np.concatenate([np.eye(len(tasks))[tasks], directions[constraints]])
    gamma = _solve_simplex_qp(combination @ gram @ combination.T)
    task_multipliers = np.zeros(len(tasks))
    task_multipliers[tasks] = gamma[: tasks.sum()]
    beta = np.zeros(len(directions))
    beta[constraints] = gamma[tasks.sum():]
    return ParetoMTLWeights(
        weights=torch.from_numpy(combination.T @ gamma),
        task_multipliers=torch.from_numpy(task_multipliers),
        constraint_multipliers=torch.from_numpy(beta),
        active=torch.from_numpy(constraints),
    )


@dataclass(frozen=True)
class EPOWeights:
    """One step of Exact Pareto Optimal search: task weights and the mode that produced them.

    ``mode`` is ``"balance"`` while the weighted losses ``r ⊙ L`` are further than ``eps`` (in KL divergence
    from uniform, ``non_uniformity``) from the preference ray, ``"descent"`` once on it.
    """

    weights: Tensor
    mode: str
    non_uniformity: float


def _linprog() -> Any:
    try:
        from scipy.optimize import linprog
    except ImportError as error:  # scipy is an extra: only EPO solves a linear programme
        raise ParetorchError("the EPO solver needs scipy: pip install 'paretorch[epo]'") from error
    return linprog


def epo_weights(
    losses: Tensor | np.ndarray | Sequence[float],
    gram: Tensor | np.ndarray,
    ray: Tensor | np.ndarray | Sequence[float],
    eps: float = 1e-4,
) -> EPOWeights:
    """Task weights of EPO search (Mahapatra & Rajan 2020), the solver of Pareto HyperNetworks' PHN-EPO.

    The target is the point of the front where ``r_t·L_t`` is the same for every task (a larger ``r_t``
    means a smaller loss, as for paretorch's preferences). Its non-uniformity μ is the KL divergence of
    ``r ⊙ L / Σ r ⊙ L`` from uniform and ``a = r ⊙ (log(T·l̂) − μ)`` is the direction that lowers it. With
    ``C`` the Gram matrix, each step solves a linear programme over the simplex (scipy's HiGHS):

    - balance (μ > eps): maximise ``αᵀCa`` (the step −Gᵀα lowers μ fastest) such that the loss with the
      largest ``r_t L_t`` does not rise (``(Cα)_t ≥ 0``) and every loss with ``(Ca)_t ≤ 0`` fares no worse
      than under the pure balancing step (``(Cα)_t ≥ (Ca)_t``); the others may rise (controlled ascent);
    - descent (μ ≤ eps): maximise ``1ᵀCα`` with ``Cα ≥ 0`` (no loss rises) and ``αᵀCa`` not worse than
      ``min(max(Ca), 0)``, relaxed when that is infeasible.

    >>> result = epo_weights([1.0, 1.0], np.eye(2), [0.8, 0.2])  # task 1's weighted loss is too large
    >>> result.mode, result.weights.round(decimals=6).tolist()
    ('balance', [1.0, 0.0])
    """
    loss_vec = _as_array(losses).reshape(-1)
    g, r = _as_array(gram), _as_array(ray).reshape(-1)
    tasks = loss_vec.shape[0]
    if g.shape != (tasks, tasks) or r.shape != (tasks,):
        raise ParetorchError(f"EPO needs {tasks} losses, a ({tasks}, {tasks}) Gram matrix and a ray of {tasks}; "
                             f"got gram {g.shape} and ray {r.shape}")
    if (r < 0).any() or r.sum() <= 0 or (loss_vec < 0).any():
        raise ParetorchError("EPO needs a non-negative, non-zero ray and non-negative losses "
                             f"(got ray {r.tolist()}, losses {loss_vec.tolist()})")
    weighted = r * loss_vec
    if weighted.sum() <= 0:  # every weighted loss is zero: nothing to balance, plain descent
        return EPOWeights(torch.from_numpy(r / r.sum()), "descent", 0.0)
    share = weighted / weighted.sum()
    present = share > np.finfo(float).eps
    mu = float(np.sum(share[present] * np.log(share[present] * tasks)))
    # log(T·l̂) is −∞ where a weighted loss is 0; those tasks have r_t = 0 or L_t = 0 and no adjustment.
    adjustment = np.where(present, r * (np.log(np.where(present, share, 1.0) * tasks) - mu), 0.0)
    ca = g @ adjustment
    linprog = _linprog()
    simplex = {"A_eq": np.ones((1, tasks)), "b_eq": [1.0], "bounds": [(0.0, None)] * tasks, "method": "highs"}
    if mu > eps:
        rhs = ca.copy()
        rhs[ca > 0] = -np.inf  # these losses are allowed to rise
        if not (ca > 0).any():
            rhs[:] = 0.0
        rhs[weighted == weighted.max()] = 0.0  # the most over-weighted loss must not rise
        finite = np.isfinite(rhs)
        result = linprog(-ca, A_ub=-g[finite] if finite.any() else None, b_ub=-rhs[finite] if finite.any() else None,
                         **simplex)
        mode = "balance"
    else:
        floor = min(float(ca.max()), 0.0)
        result = linprog(-g.sum(axis=0), A_ub=np.vstack([-g, -ca[None]]), b_ub=np.append(np.zeros(tasks), -floor),
                         **simplex)
        if result.status != 0:
            result = linprog(-g.sum(axis=0), A_ub=-g, b_ub=np.zeros(tasks), **simplex)
        mode = "descent"
    if result.status != 0:
        # Infeasible only in degenerate cases (e.g. a zero Gram row); fall back to the ray's scalarisation.
        return EPOWeights(torch.from_numpy(r / r.sum()), mode, mu)
    alpha = np.clip(result.x, 0.0, None)
    return EPOWeights(torch.from_numpy(alpha / alpha.sum()), mode, mu)
