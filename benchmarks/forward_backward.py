"""Time one forward+backward with M per-sample preferences in one batched pass, against M sequential
single-preference passes and against one pass of the plain model at batch M·B.

Every parameterisation: PaMaL's ensemble, PaLoRA's and LORPMAN's low-rank adapters, the hypernetwork (CPMTL / PHN),
COSMOS's input conditioning and FiLM. ``batched/plain`` is the ratio to the plain model at batch M·B.

``--channels-last`` lays the image batches out NHWC (``ParetoModel.use_channels_last``; the plain model's batch too).

Run: ``python benchmarks/forward_backward.py [--device cpu|cuda] [--batch 256] [--m 4] [--models lenet,mlp,resnet18]
[--channels-last] [--reuse-freed-memory]``.
Prints ratios measured in one run (median of repeated timings); nothing here is a test.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from _timing import median_seconds
from paretorch import conditioned, ensemble, film, hypernetwork, lowrank
from paretorch.allocator import reuse_freed_memory
from paretorch.models import CensusMLP, MultiLeNet, ResNet18MTL
from paretorch.parameterisations import to_channels_last


def timed(step: Callable[[], None], device: str, repeats: int) -> float:
    return median_seconds(step, device, repeats)


def loss_of(outputs: list[torch.Tensor]) -> torch.Tensor:
    return sum(out.float().pow(2).mean() for out in outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", default="lenet,mlp", help="of lenet, mlp, resnet18 (32×32 inputs)")
    parser.add_argument("--channels-last", action="store_true", help="image batches laid out channels-last")
    parser.add_argument("--reuse-freed-memory", action="store_true",
                        help="call paretorch.allocator.reuse_freed_memory first, as the paretorch command does")
    args = parser.parse_args()
    if args.reuse_freed_memory:
        reuse_freed_memory()
    torch.manual_seed(0)
    device, batch, count = args.device, args.batch, args.m
    available: dict[str, tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = {
        "lenet": ("LeNet (MultiMNIST)", MultiLeNet, (1, 28, 28)),
        "mlp": ("MLP (Census, 468 inputs)", lambda: CensusMLP(468), (468,)),
        "resnet18": ("ResNet-18 (32×32)", ResNet18MTL, (3, 32, 32)),
    }
    models = {available[key][0]: (available[key][1](), available[key][2]) for key in args.models.split(",")}
    print(f"device={device} batch B={batch} preferences M={count} torch={torch.__version__} "
          f"threads={torch.get_num_threads()} channels_last={args.channels_last} "
          f"reuse_freed_memory={args.reuse_freed_memory}")
    print(f"{'model':<26} {'method':<14} {'batched ms':>10} {'sequential ms':>13} {'plain M·B ms':>12} "
          f"{'seq/batched':>11} {'batched/plain':>13}")
    for model_name, (net, shape) in models.items():
        net = net.to(device)
        x = torch.randn(batch, *shape, device=device)
        big = x.repeat(count, *([1] * len(shape)))
        if args.channels_last:
            x, big = to_channels_last(x), to_channels_last(big)
        prefs = torch.distributions.Dirichlet(torch.ones(2)).sample((count,)).to(device)

        def plain_step(net: nn.Module = net, big: torch.Tensor = big) -> None:
            net.zero_grad(set_to_none=True)
            loss_of(net(big)).backward()

        plain = timed(plain_step, device, args.repeats)
        for method, pm in {
            "pamal": ensemble(net, 2),
            "palora r=1": lowrank(net, 2, rank=1, scale=2.0),
            "lorpman r=4": lowrank(net, 2, rank=4, scale=0.5, scaling="lorpman"),
            # A hypernetwork's output layer has 100 × the target's parameters: not built for ResNet-18 (1.1 B).
            **({"hypernetwork": hypernetwork(net, 2)} if sum(p.numel() for p in net.parameters()) < 10**6 else {}),
            "cosmos input": conditioned(net, 2),
            "film": film(net, 2),
        }.items():
            pm = pm.to(device).use_channels_last(args.channels_last)

            def batched_step(pm: nn.Module = pm, x: torch.Tensor = x, prefs: torch.Tensor = prefs) -> None:
                pm.zero_grad(set_to_none=True)
                loss_of(pm.multi_forward(x, prefs)).backward()

            def sequential_step(pm: nn.Module = pm, x: torch.Tensor = x, prefs: torch.Tensor = prefs) -> None:
                pm.zero_grad(set_to_none=True)
                sum(loss_of(pm(x, pref)) for pref in prefs).backward()

            together = timed(batched_step, device, args.repeats)
            one_by_one = timed(sequential_step, device, args.repeats)
            print(f"{model_name:<26} {method:<14} {1000 * together:>10.2f} {1000 * one_by_one:>13.2f} "
                  f"{1000 * plain:>12.2f} {one_by_one / together:>11.2f} {together / plain:>13.2f}")


if __name__ == "__main__":
    main()
