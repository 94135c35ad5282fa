import numpy as np
import pytest
import torch

from paretorch.preferences import unit_vectors
from paretorch.solvers import (
    kkt_violation,
    min_norm_weights,
    pareto_mtl_feasibility_weights,
    pareto_mtl_weights,
)


def random_gram(rng, n, rank=None, duplicate=False):
    jacobian = rng.normal(size=(n, rank or rng.integers(1, 12))) * rng.uniform(0.1, 10, size=(n, 1))
    if duplicate:
        jacobian[1] = jacobian[0]
    return jacobian @ jacobian.T, jacobian


@pytest.mark.parametrize("seed", range(40))
def test_min_norm_satisfies_kkt(seed):
    rng = np.random.default_rng(seed)
    gram, jacobian = random_gram(rng, int(rng.integers(2, 10)), duplicate=seed % 4 == 0)
    weights = min_norm_weights(gram).numpy()
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    assert kkt_violation(gram, weights) < 1e-9
    # No other point on the simplex has a smaller norm (sampled check, independent of the KKT formula).
    value = weights @ gram @ weights
    others = rng.dirichlet(np.ones(len(weights)), size=2000)
    assert (np.einsum("bi,ij,bj->b", others, gram, others) >= value - 1e-9).all()
    direction = -jacobian.T @ weights
    # Lemma: −d is a common descent direction, g_iᵀd ≤ −‖d‖² for every task.
    assert (jacobian @ direction <= -(direction @ direction) + 1e-8 * np.abs(gram).max()).all()


def test_min_norm_hand_values():
    assert min_norm_weights([[1.0, 0.0], [0.0, 4.0]]).tolist() == pytest.approx([0.8, 0.2])
    # Opposite gradients: the min-norm point is the origin, reached at equal weights.
    assert min_norm_weights([[1.0, -1.0], [-1.0, 1.0]]).tolist() == pytest.approx([0.5, 0.5])
    # One gradient inside the others' hull direction: the smaller one wins alone.
    assert min_norm_weights([[1.0, 2.0], [2.0, 4.0]]).tolist() == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("seed", range(30))
def test_pareto_mtl_weights_satisfy_dual_kkt(seed):
    rng = np.random.default_rng(100 + seed)
    tasks = int(rng.integers(2, 4))
    gram, jacobian = random_gram(rng, tasks)
    refs = unit_vectors(tasks, 5 if tasks == 2 else 6).double().numpy()
    refs = refs / np.linalg.norm(refs, axis=1, keepdims=True)  # the solver compares directions: exact unit norm
    k = int(rng.integers(0, len(refs)))
    losses = rng.uniform(0.1, 2.0, size=tasks)
    result = pareto_mtl_weights(losses, gram, refs, k, eps=0.05)
    values = (refs - refs[k]) @ losses
    expected_active = values >= -0.05
    expected_active[k] = False
    assert result.active.numpy().tolist() == expected_active.tolist()
    gamma = np.concatenate([result.task_multipliers.numpy(), result.constraint_multipliers.numpy()[expected_active]])
    combination = np.concatenate([np.eye(tasks), (refs - refs[k])[expected_active]])
    assert kkt_violation(combination @ gram @ combination.T, gamma) < 1e-9
    assert (result.constraint_multipliers.numpy()[~expected_active] == 0).all()
    # Eq. 18: the weights are λ + Σ β_j (u_j − u_k), and −Σ α_i ∇L_i decreases every task and active constraint.
    assert np.allclose(result.weights.numpy(), combination.T @ gamma)
    direction = -jacobian.T @ result.weights.numpy()
    vectors = combination @ jacobian
    scale = np.abs(gram).max()
    assert (vectors @ direction <= -(direction @ direction) + 1e-8 * scale).all()


def test_pareto_mtl_without_active_constraints_is_mgda():
    refs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gram = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    # Losses (1, 1): G_1 = (u_1 − u_0)ᵀL = 0 ≥ −ε, so active; with losses (1, 3) for k=1, G_0 = −2: inactive.
    result = pareto_mtl_weights([1.0, 3.0], gram, refs, k=1, eps=1e-3)
    assert not result.active.any()
    assert torch.allclose(result.weights, min_norm_weights(gram))


def test_feasibility_phase():
    refs = unit_vectors(2, 3).double()
    gram = torch.eye(2, dtype=torch.float64)
    # Losses (2, 1): u_0ᵀL = 2, u_1ᵀL = 2.12, u_2ᵀL = 1, so L lies in region 1, and for k=0 only G_1 ≥ 0.
    step = pareto_mtl_feasibility_weights([2.0, 1.0], gram, refs, k=0)
    assert step is not None
    assert step.active.tolist() == [False, True, False]
    # With an identity Jacobian the direction −Σα∇L is −α, and it reduces the violated constraint.
    direction = -step.weights.numpy()
    assert (refs[1] - refs[0]).numpy() @ direction < 0
    # Losses (1, 4) lie in region 2: both G_1 and G_2 are violated for k = 0.
    both = pareto_mtl_feasibility_weights([1.0, 4.0], gram, refs, k=0)
    assert both is not None
    assert both.active.tolist() == [False, True, True]
    for j in (1, 2):
        assert (refs[j] - refs[0]).numpy() @ (-both.weights.numpy()) < 0
    assert pareto_mtl_feasibility_weights([3.0, 0.5], gram, refs, k=0) is None
