import itertools
import math

import pytest
import torch

from paretorch.errors import ParetorchError
from paretorch.preferences import (
    AnnealedDirichlet,
    AnnealedGrid,
    Dirichlet,
    Fixed,
    PreferenceSampler,
    as_preference,
    das_dennis,
    simplex_grid,
    unit_vectors,
)


@pytest.mark.parametrize(("tasks", "size"), [(2, 11), (3, 66), (4, 100), (5, 100), (40, 100)])
def test_default_grid_sizes_vertices_and_sums(tasks, size):
    grid = simplex_grid(tasks)
    assert grid.shape == (size, tasks)
    assert torch.allclose(grid.sum(dim=1), torch.ones(size), atol=1e-6)
    assert (grid >= 0).all()
    for vertex in torch.eye(tasks):
        assert (grid - vertex).abs().sum(dim=1).min() < 1e-6, "every vertex is in the grid"
    interior = (grid > 1e-6).all(dim=1)
    assert interior.sum() >= 1, "the grid holds interior points"
    assert len(torch.unique(grid, dim=0)) == size, "no duplicate points"


def test_two_task_grid_is_evenly_spaced():
    grid = simplex_grid(2)
    assert torch.allclose(grid[:, 0], torch.linspace(0, 1, 11))


def test_three_task_grid_is_the_ten_partition_lattice():
    grid = simplex_grid(3)
    assert torch.allclose(grid * 10, (grid * 10).round(), atol=1e-5)


def test_many_task_grid_is_deterministic_and_mostly_interior():
    first, second = simplex_grid(40), simplex_grid(40)
    assert torch.equal(first, second)
    assert (first[40:] > 0).all(), "beyond the vertices every point is strictly interior"


def test_das_dennis_size_matches_binomial():
    assert len(das_dennis(4, 5)) == math.comb(8, 3)


def test_annealed_grid_starts_at_centre_and_ends_on_base_rays():
    sampler = AnnealedGrid(3, m=6, temperature=1.0)
    start = sampler.sample(0, 100)
    assert torch.allclose(start, torch.full((6, 3), 1 / 3))
    end = sampler.sample(99, 100)
    assert torch.allclose(end, simplex_grid(3, 6))
    assert (end == 1).any(), "with Q = 1 the vertices are reached at the end"


def test_annealed_grid_matches_equation_3_mid_training():
    sampler = AnnealedGrid(2, m=3, temperature=2.0)
    tau = 40 / 80  # step 40 of 81 steps
    exponent = tau / 2.0
    base = simplex_grid(2, 3)
    expected = base.double() ** exponent
    expected = expected / expected.sum(dim=1, keepdim=True)
    assert torch.allclose(sampler.sample(40, 81), expected.float())


def test_annealed_grid_spreads_monotonically():
    sampler = AnnealedGrid(2, m=5, temperature=1.0)
    spreads = [sampler.sample(step, 50)[:, 0].std().item() for step in range(50)]
    assert all(b >= a - 1e-7 for a, b in itertools.pairwise(spreads))


@pytest.mark.parametrize(("tasks", "per_step"), [(2, 2), (3, 4), (10, 5), (40, 5), (40, 1)])
def test_annealed_grid_in_turn_trains_every_ray_equally_often_spread_over_the_grid(tasks, per_step):
    full = AnnealedGrid(tasks, temperature=1.0)
    turn = AnnealedGrid(tasks, temperature=1.0, per_step=per_step)
    grid = full.sample(0, 1)  # the end of the schedule (τ = 1, Q = 1): the base rays themselves
    index = {tuple(ray): i for i, ray in enumerate(grid.tolist())}
    counts = [0] * full.m
    for step in range(full.m):  # one cycle: m steps (at τ = 1 throughout: steps past the end stay there)
        picked = sorted(index[tuple(ray)] for ray in turn.sample(step, 1).tolist())
        assert len(set(picked)) == per_step, "distinct rays of the grid"
        gaps = [b - a for a, b in zip(picked, [*picked[1:], picked[0] + full.m], strict=True)]
        assert min(gaps) >= full.m // per_step, f"rays spread over the grid, not a block of neighbours: {picked}"
        for i in picked:
            counts[i] += 1
    assert counts == [per_step] * full.m, "each ray per_step times in every m steps"
    early = AnnealedGrid(tasks, temperature=0.2, margin=0.01, per_step=per_step).sample(3, 100).tolist()
    annealed = AnnealedGrid(tasks, temperature=0.2, margin=0.01).sample(3, 100).tolist()
    assert {tuple(ray) for ray in early} <= {tuple(ray) for ray in annealed}, "annealed as the full grid is"
    assert torch.equal(AnnealedGrid(tasks, per_step=10_000).sample(5, 9), AnnealedGrid(tasks).sample(5, 9))
    with pytest.raises(ParetorchError, match="per_step >= 1"):
        AnnealedGrid(tasks, per_step=0)


def test_dirichlet_is_reproducible_and_on_simplex():
    a = Dirichlet(4, p=2.0, m=8, generator=torch.Generator().manual_seed(3)).sample(0, 10)
    b = Dirichlet(4, p=2.0, m=8, generator=torch.Generator().manual_seed(3)).sample(0, 10)
    assert torch.equal(a, b)
    assert a.shape == (8, 4)
    assert torch.allclose(a.sum(dim=1), torch.ones(8))


def test_dirichlet_mean_matches_concentration():
    samples = Dirichlet(3, p=[1.0, 2.0, 5.0], m=20000, generator=torch.Generator().manual_seed(0)).sample(0, 1)
    assert torch.allclose(samples.mean(dim=0), torch.tensor([1 / 8, 2 / 8, 5 / 8]), atol=0.01)


def test_annealed_dirichlet_concentrates_then_spreads():
    sampler = AnnealedDirichlet(2, p=5.0, m=5000, generator=torch.Generator().manual_seed(0))
    assert sampler.concentration(0, 100) == pytest.approx(5.05)
    assert sampler.concentration(99, 100) == pytest.approx(0.05)
    early, late = sampler.sample(0, 100), sampler.sample(99, 100)
    assert early[:, 0].std() < late[:, 0].std()
    assert torch.allclose(late.sum(dim=1), torch.ones(5000))


def test_fixed_and_protocol():
    sampler = Fixed([[0.2, 0.8]])
    assert torch.equal(sampler.sample(0, 1), torch.tensor([[0.2, 0.8]]))
    for candidate in (sampler, Dirichlet(2), AnnealedGrid(2), AnnealedDirichlet(2)):
        assert isinstance(candidate, PreferenceSampler)


def test_unit_vectors_two_tasks_follow_pareto_mtl():
    vectors = unit_vectors(2, 5)
    angles = torch.atan2(vectors[:, 1], vectors[:, 0])
    assert torch.allclose(angles, torch.arange(5) * math.pi / 8, atol=1e-6)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(5))


def test_unit_vectors_three_tasks_are_unit_and_positive():
    vectors = unit_vectors(3, 10)
    assert vectors.shape == (10, 3)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(10))
    assert (vectors >= 0).all()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0.5, 0.5, 0.0], "shape (3,)"),
        ([[0.5, 0.5, 0.0]], "shape (1, 3)"),
        ([0.5, float("nan")], "NaN"),
        ([1.5, -0.5], "negative weights"),
        ([0.5, 0.6], "sum to 1.1"),
    ],
)
def test_as_preference_messages(value, message):
    with pytest.raises(ParetorchError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        as_preference(value, 2)
    assert "\n" not in str(info.value)


def test_as_preference_accepts_batches_and_pseudo_preferences():
    batch = as_preference(torch.tensor([[0.1, 0.9], [1.0, 0.0]]), 2)
    assert batch.shape == (2, 2)
    outside = as_preference([1.5, -0.5], 2, allow_outside_simplex=True)
    assert torch.equal(outside, torch.tensor([1.5, -0.5]))
