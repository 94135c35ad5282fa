import moocore
import numpy as np
import pytest
import torch

from paretorch.errors import ParetorchError
from paretorch.metrics import (
    generational_distance,
    hypervolume,
    igd,
    igd_plus,
    nondominated,
    spearman_monotonicity,
)


def test_hypervolume_hand_computed_2d():
    # Staircase of (1,3), (2,2), (3,1) under ref (4,4): 3·1 + 2·1 + 1·1 = 6.
    result = hypervolume([[1, 3], [2, 2], [3, 1]], ref=[4, 4])
    assert result.value == pytest.approx(6.0)
    assert result.method == "exact"


def test_hypervolume_maximised_accuracies():
    # Accuracies (0.9, 0.5) and (0.6, 0.8) above ref 0: 0.45 + 0.48 − 0.30 = 0.63.
    result = hypervolume(np.array([[0.9, 0.5], [0.6, 0.8]]), ref=0.0, maximize=True)
    assert result.value == pytest.approx(0.63)


def test_hypervolume_matches_moocore_3d():
    points = np.random.default_rng(0).random((30, 3))
    assert hypervolume(points, ref=[1.1] * 3).value == pytest.approx(moocore.hypervolume(points, ref=[1.1] * 3))


def test_hypervolume_monotone_when_adding_points():
    rng = np.random.default_rng(1)
    points = rng.random((5, 3))
    value = hypervolume(points, ref=[1, 1, 1]).value
    for _ in range(20):
        points = np.vstack([points, rng.random((1, 3))])
        new_value = hypervolume(points, ref=[1, 1, 1]).value
        assert new_value >= value - 1e-12
        value = new_value


def test_points_outside_reference_add_nothing():
    assert hypervolume([[5.0, 5.0]], ref=[4.0, 4.0]).value == 0.0
    assert hypervolume([[1.0, 1.0], [5.0, 0.5]], ref=[4.0, 4.0]).value == pytest.approx(9.0)


def test_monte_carlo_within_three_standard_errors_5d():
    points = np.random.default_rng(2).random((40, 5))
    exact = hypervolume(points, ref=[1.0] * 5).value
    estimate = hypervolume(points, ref=[1.0] * 5, method="monte-carlo", samples=50_000, seed=7)
    assert estimate.method == "monte-carlo"
    assert estimate.std_error is not None and estimate.std_error > 0
    assert abs(estimate.value - exact) <= 3 * estimate.std_error


def test_method_choice_by_number_of_objectives():
    rng = np.random.default_rng(3)
    for dim, method in [(4, "exact"), (12, "approx"), (40, "monte-carlo")]:
        points = 0.5 + 0.5 * rng.random((20, dim))
        result = hypervolume(points, ref=0.0, maximize=True, samples=5000)
        assert result.method == method
        assert result.value > 0


def test_hypervolume_rejects_nan():
    with pytest.raises(ParetorchError, match="NaN"):
        hypervolume([[np.nan, 1.0]], ref=[2, 2])


def test_nondominated_hand_sets():
    assert nondominated([[1, 2], [2, 1], [2, 2], [3, 3]]).tolist() == [True, True, False, False]
    assert nondominated([[1, 1], [1, 1]]).tolist() == [True, True]
    assert nondominated([[0.9, 0.1], [0.5, 0.5], [0.4, 0.4]], maximize=True).tolist() == [True, True, False]


def test_igd_and_igd_plus():
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert igd(front, front) == 0.0
    shifted = front + 0.1
    assert igd(shifted, front) == pytest.approx(np.sqrt(0.02))
    # IGD+ only counts the part by which a point is worse: a dominating point costs nothing.
    assert igd_plus(front - 0.1, front) == 0.0
    assert generational_distance([[0.0, 1.1]], front) == pytest.approx(0.1)


def test_spearman_monotonicity():
    prefs = torch.tensor([[0.0, 1.0], [0.3, 0.7], [0.6, 0.4], [1.0, 0.0]])
    losses = torch.tensor([[4.0, 1.0], [3.0, 2.0], [2.0, 3.0], [1.0, 4.0]])
    assert spearman_monotonicity(prefs, losses).tolist() == [-1.0, -1.0]
    accuracies = -losses
    assert spearman_monotonicity(prefs, accuracies).tolist() == [1.0, 1.0]
    partly = torch.tensor([[4.0, 1.0], [3.0, 2.0], [2.0, 3.0], [5.0, 4.0]])
    # Ranks (0,1,2,3) against (2,1,0,3): Σd² = 8, ρ = 1 − 6·8 / (4·15) = 0.2.
    assert spearman_monotonicity(prefs, partly)[0] == pytest.approx(0.2)
