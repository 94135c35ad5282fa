"""Pareto MTL, MGDA and linear scalarisation on Pareto MTL's concave problem (Lin et al. 2019, Fig. 2)."""

import math

import numpy as np
import pytest
import torch

from paretorch import hypernetwork
from paretorch.methods import build_method
from paretorch.metrics import generational_distance, igd
from paretorch.objectives import MGDA, ParetoMTL, PreferenceMOO, loss_direction
from paretorch.preferences import Dirichlet, simplex_grid, unit_vectors
from paretorch.problems import ConcaveProblem, ProblemModel, SineProblem
from paretorch.solvers import guarded_feasibility_weights, pareto_mtl_weights
from paretorch.training import TrainConfig, Trainer

PROBLEM = ConcaveProblem(d=20)
REFS = unit_vectors(2, 5)


def Point(seed: int) -> ProblemModel:
    return ProblemModel(PROBLEM, 0.3 * torch.randn(20, generator=torch.Generator().manual_seed(seed)))


LOADER = ProblemModel.loader()
LOSSES = ProblemModel.loss_fns()


def solve(method, seed, **options):
    setup = build_method(method, Point(seed), 2, epochs=300, lr=0.5, optimizer="sgd", momentum=0.0, **options)
    setup.trainer(LOSSES).fit(LOADER)
    return PROBLEM(setup.pm.model.theta.detach())


def angle(losses):
    return math.degrees(math.atan2(float(losses[1]), float(losses[0])))


@pytest.fixture(scope="module")
def front():
    return PROBLEM.pareto_front(2000)


def test_pareto_mtl_solutions_lie_in_their_regions_and_spread(front):
    angles = []
    for k in range(5):
        losses = solve("pmtl", seed=k, k=k)
        assert int(torch.argmax(REFS @ losses)) == k, f"solution {k} at {angle(losses):.1f}° left its region"
        assert generational_distance(losses[None], front) < 0.01
        angles.append(angle(losses))
    assert angles == sorted(angles)
    assert angles[-1] - angles[0] > 60, f"solutions spread over the front: {angles}"


def test_linear_scalarisation_lands_only_near_the_ends():
    for weight in (0.1, 0.3, 0.5, 0.7, 0.9):
        losses = solve("ls", seed=0, weights=[weight, 1 - weight])
        assert float(losses.min()) < 0.05, f"LS at weight {weight} reached {losses.tolist()}, not an end"


def test_mgda_lands_in_the_middle(front):
    for seed in range(4):
        losses = solve("mgda", seed=seed)
        assert 30 < angle(losses) < 60
        assert generational_distance(losses[None], front) < 0.01


def test_objectives_reject_batches_of_preferences():
    from paretorch import ParetorchError, plain

    pm = plain(Point(0), 2)
    trainer = Trainer(pm, LOSSES, Dirichlet(2, m=3), TrainConfig(epochs=1), objective=MGDA())
    with pytest.raises(ParetorchError, match="one preference per step"):
        trainer.fit(LOADER)


def test_pareto_mtl_initial_phase_reaches_feasibility():
    objective = ParetoMTL(REFS, k=0, init_steps=50)
    losses = torch.tensor([0.2, 0.9], dtype=torch.float64)  # region 4, far from region 0
    weights = objective.weights(losses, torch.eye(2, dtype=torch.float64))
    assert not objective.feasible
    # The initial phase's weights push task 2's loss down relative to task 1's: towards region 0.
    assert weights[1] > weights[0]


def test_pareto_mtl_weights_are_pure_and_update_advances_the_phase():
    objective = ParetoMTL(REFS, k=0, init_steps=2)
    losses, gram = torch.tensor([0.2, 0.9], dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    first = objective.weights(losses, gram)
    for _ in range(5):  # calling it to log or inspect changes nothing
        torch.testing.assert_close(objective.weights(losses, gram), first)
    assert objective.state_dict() == {"steps": 0, "feasible": False}
    for _ in range(2):
        objective.update(losses[None], gram[None], torch.zeros(1, 2))
    # init_steps have passed: the initial phase is over and the constrained min-norm weights take over.
    assert objective.state_dict()["steps"] == 2
    after = objective.weights(losses, gram)
    objective.update(losses[None], gram[None], torch.zeros(1, 2))
    assert objective.feasible
    assert not torch.allclose(after, first)


def test_loss_direction_swaps_two_task_weights():
    direction = loss_direction(torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(direction, torch.tensor([0.2, 0.8], dtype=torch.float64) / math.hypot(0.2, 0.8))
    batch = loss_direction(torch.tensor([[0.8, 0.2], [0.5, 0.5], [0.0, 1.0]]))
    torch.testing.assert_close(batch.norm(dim=1), torch.ones(3, dtype=torch.float64))  # unit per row
    torch.testing.assert_close(batch[0], direction)


def _moo_vectors(pref, seed):
    generator = torch.Generator().manual_seed(seed)
    refs = torch.randn(3, 2, generator=generator, dtype=torch.float64).abs()
    return torch.cat([loss_direction(pref)[None], refs / refs.norm(dim=1, keepdim=True)])


def test_preference_moo_is_pareto_mtl_with_the_preference_as_subproblem():
    losses = torch.tensor([0.4, 0.9], dtype=torch.float64)
    gram = torch.tensor([[2.0, -0.5], [-0.5, 1.0]], dtype=torch.float64)
    pref = torch.tensor([0.7, 0.3])
    weights = PreferenceMOO(generator=torch.Generator().manual_seed(5), infeasible="paper").weights(losses, gram, pref)
    expected = pareto_mtl_weights(losses, gram, _moo_vectors(pref, 5), 0).weights
    torch.testing.assert_close(weights, expected)


@pytest.mark.parametrize("losses", [[0.4, 0.9], [0.9, 0.2], [0.5, 0.5]])
def test_guarded_moo_uses_the_guarded_step_only_outside_the_region(losses):
    losses = torch.tensor(losses, dtype=torch.float64)
    gram = torch.tensor([[2.0, -0.5], [-0.5, 1.0]], dtype=torch.float64)
    pref = torch.tensor([0.7, 0.3])  # loss direction ∝ (0.3, 0.7): L₁ should be the smaller loss
    vectors = _moo_vectors(pref, 5)
    weights = PreferenceMOO(generator=torch.Generator().manual_seed(5)).weights(losses, gram, pref)
    guarded = guarded_feasibility_weights(losses, gram, vectors, 0)
    expected = (guarded if guarded is not None else pareto_mtl_weights(losses, gram, vectors, 0)).weights
    torch.testing.assert_close(weights, expected)


def random_task_gradients(seed, width):
    """A random generator, task count (2-4), Jacobian (tasks, width) and its Gram matrix."""
    rng = np.random.default_rng(seed)
    tasks = int(rng.integers(2, 5))
    jacobian = rng.normal(size=(tasks, width))
    return rng, tasks, jacobian, jacobian @ jacobian.T


@pytest.mark.parametrize("seed", range(20))
def test_guarded_step_lowers_the_too_large_losses_and_the_violated_constraints(seed):
    rng, tasks, jacobian, gram = random_task_gradients(seed, 7)
    refs = np.abs(rng.normal(size=(4, tasks)))
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    losses = rng.uniform(0.1, 2.0, size=tasks)
    step = guarded_feasibility_weights(losses, gram, refs, 0)
    violated = (refs[1:] - refs[0]) @ losses > 0
    if step is None:
        assert not violated.any()
        return
    direction = step.weights.numpy() @ jacobian  # the update is −η·direction
    over = losses / np.linalg.norm(losses) > refs[0]
    assert over.any()
    # Min-norm optimality: every guarded row has ⟨∇row, d⟩ ≥ ‖d‖², so −d lowers it at first order.
    rows = np.concatenate([np.eye(tasks)[over], (refs[1:] - refs[0])[violated]])
    assert (rows @ jacobian @ direction >= direction @ direction - 1e-9).all()
    assert step.task_multipliers.numpy()[~over].max(initial=0.0) == 0.0


def _sine_front(objective, seed, steps=300):
    torch.manual_seed(seed)
    problem = SineProblem(10)
    pm = hypernetwork(ProblemModel(problem, torch.zeros(10)), 2, hidden=50, layers=2)
    config = TrainConfig(epochs=steps, lr=1e-2, optimizer="adam", seed=seed)
    Trainer(pm, ProblemModel.loss_fns(), Dirichlet(2, 1.0, 2, torch.Generator().manual_seed(seed)), config,
            objective=objective, objective_parameters="all").fit(ProblemModel.loader())
    with torch.no_grad():
        return torch.stack([problem(pm.at(pref).theta) for pref in simplex_grid(2, 21)])


def test_cpmtl_moo_reconstructs_the_concave_sine_front_and_linear_scalarisation_does_not():
    """CPMTL App. D: the preference-based gradient reaches the concave middle of the front, LS only its ends."""
    problem = SineProblem(10)
    front, ends = problem.pareto_front(1000), problem.pareto_front(2)

    def on_front_middle(losses):  # generated solutions within 0.05 of the front and over 0.1 from both ends
        near = torch.cdist(losses, front).min(dim=1).values < 0.05
        return int((near & (torch.cdist(losses, ends).min(dim=1).values > 0.1)).sum())

    moo = _sine_front(PreferenceMOO(generator=torch.Generator().manual_seed(0)), seed=0, steps=300)
    # LS gets more (cheaper) steps so that what it misses is not a matter of budget: its generator has
    # converged to the two ends; an undertrained one still passes through the middle on its way (at 1,000 steps
    # it still did on some CPUs, with 11 of 21 points in the middle; at 2,000 one is left).
    ls = _sine_front(None, seed=0, steps=2000)
    # 300 steps; the benchmark's 1,500 reach IGD 0.036 against the 21 exact points' floor 0.017.
    assert igd(moo, front) < 0.12, f"moo IGD {igd(moo, front):.3f}"
    assert on_front_middle(moo) >= 12, moo
    assert (moo[1:, 0] <= moo[:-1, 0] + 0.02).all(), "a larger weight on task 1 must give a smaller loss 1"
    assert on_front_middle(ls) <= 3, ls
    assert float(torch.cdist(ls, ends).min(dim=1).values.median()) < 0.1, "LS solutions sit at the ends"


# ----- EPO (PHN-EPO's solver) ------------------------------------------------------------------------------------
@pytest.mark.parametrize("r1", [0.2, 0.5, 0.8])
def test_epo_lands_on_its_ray_of_the_concave_front(r1, front):
    from paretorch import plain
    from paretorch.objectives import EPO
    from paretorch.preferences import Fixed

    ray = torch.tensor([r1, 1 - r1])
    pm = plain(Point(0), 2)
    config = TrainConfig(epochs=300, lr=0.5, optimizer="sgd", momentum=0.0)
    Trainer(pm, LOSSES, Fixed([ray.tolist()]), config, objective=EPO(), objective_parameters="all").fit(LOADER)
    losses = PROBLEM(pm.model.theta.detach())
    # On EPO's ray r ⊙ L is constant, i.e. L ∝ 1/r: the concave middle too, which LS cannot reach.
    assert abs(angle(losses) - math.degrees(math.atan2(1 / ray[1], 1 / ray[0]))) < 1.0, losses
    assert generational_distance(losses[None], front) < 0.01


@pytest.mark.parametrize("seed", range(20))
def test_epo_steps_keep_their_guarantees(seed):
    from paretorch.solvers import epo_weights

    rng, tasks, _, gram = random_task_gradients(seed, 9)
    ray = rng.dirichlet(np.ones(tasks))
    losses = rng.uniform(0.1, 2.0, size=tasks)
    result = epo_weights(losses, gram, ray)
    alpha = result.weights.numpy()
    assert alpha.min() >= -1e-12 and abs(alpha.sum() - 1) < 1e-9
    change = gram @ alpha  # the update −η·Jᵀα changes L_t by −η·(Cα)_t
    if result.mode == "balance":
        weighted = ray * losses
        assert change[np.argmax(weighted)] >= -1e-9, "the most over-weighted loss must not rise"
    else:
        assert (change >= -1e-9).all(), "descent mode: no loss rises"
    # On the ray itself EPO descends.
    on_ray = epo_weights(1 / ray, gram, ray)
    assert on_ray.mode == "descent" and on_ray.non_uniformity < 1e-9


def test_epo_rejects_negative_losses_with_one_line():
    from paretorch import ParetorchError
    from paretorch.solvers import epo_weights

    with pytest.raises(ParetorchError, match="non-negative"):
        epo_weights([-0.1, 1.0], np.eye(2), [0.5, 0.5])


# ----- MGDA-UB -------------------------------------------------------------------------------------------------------
def test_mgda_ub_uses_gradients_with_respect_to_the_representation():
    from torch import nn

    from paretorch import ParetorchError

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
            self.heads = nn.ModuleList([nn.Linear(6, 1), nn.Linear(6, 1)])

        def forward(self, x):
            z = self.encoder(x)
            return [head(z).squeeze(-1) for head in self.heads]

    seen = []

    class Spy(MGDA):
        def weights(self, losses, gram, pref=None, generator=None):
            seen.append(gram)
            return super().weights(losses, gram, pref)

    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    setup = build_method("mgda", TwoHeads(), 2, epochs=1, ub=True)
    model = setup.pm.model
    start = {k: v.clone() for k, v in model.state_dict().items()}
    mse = torch.nn.functional.mse_loss
    Trainer(setup.pm, [lambda o, t: mse(o, t)] * 2, setup.sampler, setup.config,
            objective=Spy(gradients="representation")).fit(loader)
    # The expected Gram matrix, by hand, at the starting weights: gradients of each loss w.r.t. Z = encoder(x).
    model.load_state_dict(start)
    z = model.encoder(x)
    grads = [torch.autograd.grad(mse(head(z).squeeze(-1), y[:, t]), z)[0].reshape(-1)
             for t, head in enumerate(model.heads)]
    expected = torch.stack(grads).double() @ torch.stack(grads).double().T
    torch.testing.assert_close(seen[0], expected)
    setup = build_method("mgda", TwoHeads(), 2, epochs=1, ub=True, representation="trunk")
    with pytest.raises(ParetorchError, match="representation"):
        setup.trainer([lambda o, t: mse(o, t)] * 2)


# ----- Beyond the papers: Pareto MTL-style constraints on continuous parameterisations ---------------------------
def _continuous_front(method, solver, steps=300):
    torch.manual_seed(0)
    extra = {"scale": 1.0, "rank": 1} if method != "pamal" else {}
    model = ProblemModel(PROBLEM, 0.3 * torch.randn(20), layer=True)
    setup = build_method(method, model, 2, epochs=steps, lr=2e-2, solver=solver, m=4, **extra)
    setup.trainer(LOSSES).fit(LOADER)
    with torch.no_grad():
        return torch.stack([PROBLEM(setup.pm.at(pref).current_theta()) for pref in simplex_grid(2, 11)])


@pytest.mark.parametrize("method", ["pamal", "lorpman"])
def test_continuous_parameterisation_with_preference_constraints_steers_across_the_concave_front(method, front):
    grid = simplex_grid(2, 11)
    target = [math.degrees(math.atan2(float(d[1]), float(d[0]))) for d in loss_direction(grid)]
    errors = {}
    for solver in ("moo", "ls"):
        losses = _continuous_front(method, solver)
        errors[solver] = np.abs(np.array([angle(row) for row in losses]) - np.array(target))
        if solver == "moo":
            assert generational_distance(losses, front) < 1e-3
            assert (losses[1:, 0] <= losses[:-1, 0] + 1e-4).all(), "more weight on task 1, less loss 1"
    assert errors["moo"].mean() < 2.5 and errors["moo"].max() < 5.0, errors["moo"]
    assert errors["ls"].mean() > 2 * errors["moo"].mean(), errors
