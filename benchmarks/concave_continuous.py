"""Continuous parameterisations on Pareto MTL's concave problem (Eq. 19, d = 20), by training objective.

Beyond the papers: PaMaL's ensemble and PaLoRA / LORPMAN's low-rank adapters, each trained with linear
scalarisation (``ls``), CPMTL's preference constraints (``moo``) or EPO (``epo``) on the sampled preferences
(Dirichlet(1), 4 per step, Adam 2e-2, 300 steps). θ sits in a bias-free ``Linear(1, 20)`` so the wrappers
apply (``ProblemModel(layer=True)``). For the 11-point preference grid the script prints the loss vectors'
angles against the angles the preferences ask for (loss direction ∝ 1 − λ), the mean and largest angle
error, and the generational distance to the true front. These are the figures that
``tests/test_objectives.py::test_continuous_parameterisation_…`` asserts on.

Run: ``python benchmarks/concave_continuous.py``.
"""

from __future__ import annotations

import math

import torch

from paretorch.methods import build_method
from paretorch.metrics import generational_distance
from paretorch.objectives import loss_direction
from paretorch.preferences import simplex_grid
from paretorch.problems import ConcaveProblem, ProblemModel

PROBLEM = ConcaveProblem(20)


def main() -> None:
    grid = simplex_grid(2, 11)
    target = torch.tensor([math.degrees(math.atan2(float(d[1]), float(d[0]))) for d in loss_direction(grid)])
    front = PROBLEM.pareto_front(2000)
    print(f"target angles: {[round(a) for a in target.tolist()]}")
    for method in ("pamal", "palora", "lorpman"):
        for solver in ("ls", "moo", "epo"):
            torch.manual_seed(0)
            extra = {"scale": 1.0, "rank": 1} if method != "pamal" else {}
            model = ProblemModel(PROBLEM, 0.3 * torch.randn(20), layer=True)
            setup = build_method(method, model, 2, epochs=300, lr=2e-2, solver=solver, m=4, **extra)
            setup.trainer(ProblemModel.loss_fns()).fit(ProblemModel.loader())
            with torch.no_grad():
                losses = torch.stack([PROBLEM(setup.pm.at(pref).current_theta()) for pref in grid])
            angles = torch.rad2deg(torch.atan2(losses[:, 1], losses[:, 0]))
            error = (angles - target).abs()
            print(f"{method:8s} {solver:3s}: angles {[round(a) for a in angles.tolist()]}, error mean "
                  f"{error.mean():.1f}° max {error.max():.1f}°, GD {generational_distance(losses, front):.4f}")


if __name__ == "__main__":
    main()
