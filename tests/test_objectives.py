"""Pareto MTL, MGDA and linear scalarisation on Pareto MTL's concave problem (Lin et al. 2019, Fig. 2)."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from paretorch.methods import build_method
from paretorch.metrics import generational_distance
from paretorch.objectives import MGDA, ParetoMTL
from paretorch.preferences import unit_vectors
from paretorch.problems import ConcaveProblem
from paretorch.training import TrainConfig, Trainer

PROBLEM = ConcaveProblem(d=20)
REFS = unit_vectors(2, 5)


class Point(nn.Module):
    """The decision variable x as a 'model' whose two outputs are the problem's two losses."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.x = nn.Parameter(0.3 * torch.randn(20, generator=torch.Generator().manual_seed(seed)))

    def forward(self, inputs):
        losses = PROBLEM(self.x)
        return [losses[0].expand(inputs.shape[0]), losses[1].expand(inputs.shape[0])]


LOADER = DataLoader(TensorDataset(torch.zeros(1, 1), torch.zeros(1, 2)), batch_size=1)


def identity(output, target):
    return output.mean()


def solve(method, seed, **options):
    setup = build_method(method, Point(seed), 2, epochs=300, lr=0.5, optimizer="sgd", momentum=0.0, **options)
    Trainer(setup.pm, [identity, identity], setup.sampler, setup.config, objective=setup.objective).fit(LOADER)
    return PROBLEM(setup.pm.model.x.detach())


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
    from paretorch.preferences import Dirichlet

    pm = plain(Point(0), 2)
    trainer = Trainer(pm, [identity, identity], Dirichlet(2, m=3), TrainConfig(epochs=1), objective=MGDA())
    with pytest.raises(ParetorchError, match="one preference per step"):
        trainer.fit(LOADER)


def test_pareto_mtl_initial_phase_reaches_feasibility():
    objective = ParetoMTL(REFS, k=0, init_steps=50)
    losses = torch.tensor([0.2, 0.9], dtype=torch.float64)  # region 4, far from region 0
    weights = objective.weights(losses, torch.eye(2, dtype=torch.float64))
    assert not objective.feasible
    # The initial phase's weights push task 2's loss down relative to task 1's: towards region 0.
    assert weights[1] > weights[0]


def test_loss_direction_swaps_two_task_weights():
    from paretorch.objectives import loss_direction

    direction = loss_direction(torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(direction, torch.tensor([0.2, 0.8], dtype=torch.float64) / math.hypot(0.2, 0.8))


def test_preference_moo_is_pareto_mtl_with_the_preference_as_subproblem():
    from paretorch.objectives import PreferenceMOO, loss_direction
    from paretorch.solvers import pareto_mtl_weights

    losses = torch.tensor([0.4, 0.9], dtype=torch.float64)
    gram = torch.tensor([[2.0, -0.5], [-0.5, 1.0]], dtype=torch.float64)
    pref = torch.tensor([0.7, 0.3])
    weights = PreferenceMOO(num_refs=3, generator=torch.Generator().manual_seed(5)).weights(losses, gram, pref)
    generator = torch.Generator().manual_seed(5)
    refs = torch.randn(3, 2, generator=generator, dtype=torch.float64).abs()
    vectors = torch.cat([loss_direction(pref)[None], refs / refs.norm(dim=1, keepdim=True)])
    torch.testing.assert_close(weights, pareto_mtl_weights(losses, gram, vectors, 0).weights)
