"""Pareto MTL's K subproblems: K separate training steps vs one stacked (vmapped) step for all K models.

Both do the same maths (``tests/test_stacked.py`` checks that the weights agree): per model one forward, T
backward passes for the Gram matrix of the task gradients, the small dual, one backward of the weighted
loss and an optimiser step. Prints the median time of one step of all K models each way and the ratio
(sequential / stacked; above 1 the stacked path is faster), for MultiLeNet (28×28, 2 tasks) and the Census
MLP (Adult's 2 tasks), on random data of the right shapes.

Run: ``python benchmarks/pareto_mtl_stacked.py [--device cuda] [--models 5] [--batch 256]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds
from paretorch import plain
from paretorch.models import CensusMLP, MultiLeNet
from paretorch.objectives import ParetoMTL
from paretorch.preferences import Fixed, unit_vectors
from paretorch.training import StackedTrainer, TrainConfig, Trainer


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target)


def compare(name: str, make_model, input_shape: tuple[int, ...], args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    refs = unit_vectors(2, args.models)
    x = torch.randn(args.batch, *input_shape, device=args.device)
    y = torch.randint(0, 2, (args.batch, 2), device=args.device)
    batch = (x, y)
    models = [make_model().to(args.device) for _ in range(args.models)]
    for parameters in ("shared", "all"):
        config = TrainConfig(lr=1e-3, objective_parameters=parameters)
        trainers = []
        for k, model in enumerate(models):
            pm = plain(copy.deepcopy(model), 2)
            trainers.append(Trainer(pm, [cross_entropy] * 2, Fixed([[0.5, 0.5]]), config,
                                    objective=ParetoMTL(refs, k, init_steps=0)))
        stacked = StackedTrainer([copy.deepcopy(m) for m in models], [cross_entropy] * 2,
                                 [ParetoMTL(refs, k, init_steps=0) for k in range(args.models)], config)
        separate = median_seconds(lambda ts=trainers: [t.training_step(batch, 0, 1) for t in ts], args.device,
                                  args.repeats)
        together = median_seconds(lambda st=stacked: st.training_step(batch), args.device, args.repeats)
        print(f"{name:9s} K={args.models} B={args.batch} gradients on {parameters:6s}: sequential "
              f"{separate * 1e3:7.1f} ms, stacked {together * 1e3:7.1f} ms, ratio {separate / together:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    compare("MultiLeNet", lambda: MultiLeNet(num_tasks=2), (1, 28, 28), args)
    compare("CensusMLP", lambda: CensusMLP(88), (88,), args)


if __name__ == "__main__":
    main()
