"""CPMTL's sine problem (App. D, n = 10): a hypernetwork maps the preference to θ, trained with the
preference-based multi-objective gradient (``moo``) and with linear scalarisation (``ls``); prints the IGD of
21 generated solutions to the known front and a few of their loss vectors.

Run: ``python benchmarks/sine_problem.py --steps 1500 --lr 0.05 --optimizer sgd``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from paretorch import hypernetwork
from paretorch.metrics import igd
from paretorch.objectives import PreferenceMOO
from paretorch.preferences import Dirichlet, simplex_grid
from paretorch.problems import SineProblem
from paretorch.training import TrainConfig, Trainer

PROBLEM = SineProblem(10)


class Point(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(PROBLEM.num_params))

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        losses = PROBLEM(self.theta)
        return [losses[0].expand(inputs.shape[0]), losses[1].expand(inputs.shape[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--optimizer", default="sgd")
    args = parser.parse_args()
    loader = DataLoader(TensorDataset(torch.zeros(1, 1), torch.zeros(1, 2)), batch_size=1)
    front = PROBLEM.pareto_front(1000)
    for name, objective in (("moo", PreferenceMOO()), ("ls", None)):
        torch.manual_seed(0)
        pm = hypernetwork(Point(), 2, hidden=50, layers=2)
        config = TrainConfig(epochs=args.steps, lr=args.lr, optimizer=args.optimizer, momentum=0.9)
        sampler = Dirichlet(2, 1.0, 1, torch.Generator().manual_seed(0))
        Trainer(pm, [lambda o, t: o.mean()] * 2, sampler, config, objective=objective,
                objective_parameters="all").fit(loader)
        with torch.no_grad():
            losses = torch.stack([PROBLEM(pm.at(pref).theta) for pref in simplex_grid(2, 21)])
        print(f"{name}: IGD {igd(losses, front):.4f}; losses at λ1 = 0, .25, .5, .75, 1: "
              f"{losses[::5].round(decimals=3).tolist()}")


if __name__ == "__main__":
    main()
