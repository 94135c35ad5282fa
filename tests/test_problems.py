import pytest
import torch

from paretorch.metrics import nondominated
from paretorch.problems import ConcaveProblem, SineProblem, TwoParameterToy

PROBLEMS = [TwoParameterToy(), ConcaveProblem(d=20), ConcaveProblem(d=5, a1=10.0, a2=1.0), SineProblem(n=10)]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: type(p).__name__)
def test_known_pareto_set_is_nondominated(problem):
    front = problem.pareto_front(200)
    assert front.shape == (200, 2)
    assert nondominated(front).all()


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: type(p).__name__)
def test_random_points_never_dominate_the_front(problem):
    # A point that strictly dominated a front point would prove the "front" wrong.
    generator = torch.Generator().manual_seed(0)
    front = problem.pareto_front(400)
    candidates = problem.pareto_set(400)[torch.randint(0, 400, (2000,), generator=generator)]
    candidates = candidates + 0.3 * torch.randn(candidates.shape, generator=generator)
    losses = problem(candidates)
    slack = 1e-3 * (front.max() - front.min())
    dominates = (losses[:, None, :] < front[None, :, :] - slack).all(dim=2)
    assert not dominates.any()


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: type(p).__name__)
def test_batch_and_single_agree_and_are_differentiable(problem):
    theta = problem.pareto_set(3).clone().requires_grad_(True)
    batch = problem(theta)
    single = torch.stack([problem(row) for row in theta])
    assert torch.allclose(batch, single)
    batch.sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


def test_concave_front_is_concave():
    front = ConcaveProblem(d=20).pareto_front(101)
    middle = front[50]
    chord = (front[0] + front[-1]) / 2
    assert (middle > chord).all(), "the midpoint of the front lies above the chord: concave"


def test_unbalanced_variant_scales_the_objectives():
    theta = torch.randn(4, 5)
    assert torch.allclose(ConcaveProblem(5, a1=10.0)(theta)[:, 0], 10 * ConcaveProblem(5)(theta)[:, 0])


def test_toy_extremes_are_the_single_task_minima():
    toy = TwoParameterToy()
    front = toy.pareto_front(50)
    assert front[0, 0] == pytest.approx(front[:, 0].min().item())
    assert front[-1, 1] == pytest.approx(front[:, 1].min().item())


def test_wrong_parameter_count_is_reported():
    with pytest.raises(ValueError, match="takes 10 parameters"):
        SineProblem()(torch.zeros(3, 4))
