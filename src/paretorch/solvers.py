"""Small quadratic programs over the simplex that gradient-based multi-objective methods solve every step.

``min_norm_weights`` is the MGDA dual (Désidéri 2012; Sener & Koltun 2018): the point of minimum norm in the
convex hull of the task gradients, given only their Gram matrix. ``pareto_mtl_weights`` is Pareto MTL's dual
(Lin et al. 2019, Eq. 14 with the ε-active set of Eq. 11), returned as the adaptive task weights of Eq. 18;
``pareto_mtl_feasibility_weights`` is the initial phase's constraint-only problem (Eq. 9).

The QPs have as many variables as tasks plus active constraints (a handful), so they are solved in float64
with NumPy: a short run of accelerated projected gradient on the simplex finds a near-optimal support, then
primal active-set iterations (each an equality-constrained KKT linear system) end on the exact optimum,
degenerate Gram matrices included. The answer is checked against the KKT
conditions, ``(Gw)_i ≥ wᵀGw`` for all i with equality where ``w_i > 0``, and the tests verify them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from paretorch.errors import ParetorchError

__all__ = [
    "ParetoMTLWeights",
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


def _solve_simplex_qp(gram: np.ndarray, iterations: int = 200, tolerance: float = 1e-10) -> np.ndarray:
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
    directions = refs - refs[k]
    return directions, directions @ losses


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
    return loss_vec, g, refs


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
    active = values >= -eps
    active[k] = False  # G_k ≡ 0: the subproblem's own vector is no constraint.
    tasks = loss_vec.shape[0]
    combination = np.concatenate([np.eye(tasks), directions[active]])
    gamma = _solve_simplex_qp(combination @ g @ combination.T)
    beta = np.zeros(refs.shape[0])
    beta[active] = gamma[tasks:]
    return ParetoMTLWeights(
        weights=torch.from_numpy(combination.T @ gamma),
        task_multipliers=torch.from_numpy(gamma[:tasks]),
        constraint_multipliers=torch.from_numpy(beta),
        active=torch.from_numpy(active),
    )


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
    active = values >= 0
    active[k] = False
    if not active.any():
        return None
    rows = directions[active]
    beta_active = _solve_simplex_qp(rows @ g @ rows.T)
    beta = np.zeros(refs.shape[0])
    beta[active] = beta_active
    return ParetoMTLWeights(
        weights=torch.from_numpy(rows.T @ beta_active),
        task_multipliers=torch.zeros(loss_vec.shape[0], dtype=torch.float64),
        constraint_multipliers=torch.from_numpy(beta),
        active=torch.from_numpy(active),
    )
