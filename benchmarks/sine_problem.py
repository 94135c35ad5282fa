"""CPMTL's sine problem (App. D, n = 10): can a hypernetwork learn the whole concave front?

A 2 × 50 MLP maps the preference to θ ∈ R¹⁰ (``paretorch.hypernetwork``), trained by ``paretorch.Trainer``
with linear scalarisation (``ls``), with CPMTL's preference-based multi-objective gradient as App. A.2
writes it (``moo-paper``), with paretorch's default, which replaces Eq. 11 by a guarded feasibility step
while a preference's losses lie outside its region (``moo``), and with PHN-EPO's solver (``epo``).
Prints, per variant and seed, the IGD of the 21 solutions generated for an evenly spaced preference grid
to the true front (1,000 points), the same for the 21 exact Pareto points the grid asks for (the floor a
perfect generator reaches), and how many generated solutions lie more than 0.1 from both ends of the
front (the concave middle that LS cannot reach).

Run: ``python benchmarks/sine_problem.py`` (defaults: Adam 3e-3, 1,500 steps, 4 preferences per step,
seeds 0-2).
"""

from __future__ import annotations

import argparse
import time

import torch

from paretorch import hypernetwork
from paretorch.metrics import igd
from paretorch.objectives import EPO, Objective, PreferenceMOO, loss_direction
from paretorch.preferences import Dirichlet, simplex_grid
from paretorch.problems import ProblemModel, SineProblem
from paretorch.training import TrainConfig, Trainer

PROBLEM = SineProblem(10)


def exact_points(prefs: torch.Tensor) -> torch.Tensor:
    """The front point on each preference's ray (loss direction ``loss_direction(λ)``), by bisection on θ₁."""
    points = []
    for direction in loss_direction(prefs).float():
        low, high = -1.0, 1.0  # θ₁ = −1 gives L = (·, 0) (angle 0), θ₁ = 1 gives (0, ·) (angle 90°)
        target = torch.atan2(direction[1], direction[0])
        for _ in range(60):
            mid = (low + high) / 2
            theta = torch.tensor([mid] + [torch.sin(torch.tensor(5 * mid)).item()] * (PROBLEM.num_params - 1))
            loss = PROBLEM(theta)
            low, high = (mid, high) if torch.atan2(loss[1], loss[0]) < target else (low, mid)
        points.append(loss)
    return torch.stack(points)


def train(objective: Objective | None, seed: int, args: argparse.Namespace) -> torch.Tensor:
    torch.manual_seed(seed)
    pm = hypernetwork(ProblemModel(PROBLEM, torch.zeros(PROBLEM.num_params)), 2, hidden=50, layers=2)
    config = TrainConfig(epochs=args.steps, lr=args.lr, optimizer=args.optimizer, momentum=0.9, seed=seed)
    sampler = Dirichlet(2, 1.0, args.prefs_per_step, torch.Generator().manual_seed(seed))
    Trainer(pm, ProblemModel.loss_fns(), sampler, config, objective=objective,
            objective_parameters="all").fit(ProblemModel.loader())
    with torch.no_grad():
        return torch.stack([PROBLEM(pm.at(pref).theta) for pref in simplex_grid(2, 21)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--prefs-per-step", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    front = PROBLEM.pareto_front(1000)
    grid = simplex_grid(2, 21)
    floor = igd(exact_points(grid), front)
    ends = PROBLEM.pareto_front(2)
    print(f"steps {args.steps}, {args.optimizer} lr {args.lr}, {args.prefs_per_step} preferences per step; "
          f"IGD floor of the 21 exact points: {floor:.4f}")
    variants = {
        "moo": lambda seed: PreferenceMOO(generator=torch.Generator().manual_seed(seed)),
        "moo-paper": lambda seed: PreferenceMOO(generator=torch.Generator().manual_seed(seed), infeasible="paper"),
        "epo": lambda seed: EPO(),
        "ls": lambda seed: None,
    }
    for name, make in variants.items():
        scores = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            losses = train(make(seed), seed, args)
            middle = int((torch.cdist(losses, ends).min(dim=1).values > 0.1).sum())
            angles = torch.rad2deg(torch.atan2(losses[:, 1], losses[:, 0]))
            scores.append(igd(losses, front))
            print(f"{name:9s} seed {seed}: IGD {scores[-1]:.4f}, {middle}/21 in the middle, loss angles at "
                  f"λ₁ = 0, .1, …, 1: {[round(a) for a in angles[::2].tolist()]} ({time.perf_counter() - start:.0f} s)")
        mean = torch.tensor(scores)
        print(f"{name:9s} IGD {mean.mean():.4f} ± {mean.std(correction=0):.4f} (population std over seeds)")


if __name__ == "__main__":
    main()
