"""The cost of gradient balancing (PaMaL §4.2; ``gradient_balancing=true``, part of the CityScapes and NYUv2 protocol).

Balancing scales every task gradient on the shared parameters to unit norm, which takes one backward pass per
(preference, task) of the step (8 for 2 tasks at PaLoRA's 4 rays) besides the step's own, each through its
preference's own forward pass. This times one
training step (forward, backward, Adam) of a CityScapes-shaped problem, MTAN's SegNet with 7-class segmentation
and depth, for PaLoRA, PaMaL and LORPMAN with their defaults, with balancing and without, interleaved in one run.

``--solver epo|moo`` times a gradient-based objective instead, which takes the same M·T task gradients (all
parameters) for its Gram matrices.

Run: ``python benchmarks/gradient_balancing.py [--width 16] [--height 64] [--width-pixels 128] [--batch 8]
[--device cpu|cuda] [--solver epo|moo]``. Prints each method's median step time both ways and their ratio;
nothing here is a test.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import paretorch
from _timing import median_seconds
from paretorch.models import SegNetMTL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16, help="SegNet's first-stage channels (MTAN's: 64)")
    parser.add_argument("--height", type=int, default=64, help="image height (CityScapes' arrays: 128)")
    parser.add_argument("--width-pixels", type=int, default=128, help="image width (CityScapes' arrays: 256)")
    parser.add_argument("--batch", type=int, default=8, help="the protocol's batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--solver", choices=("epo", "moo"), help="time this gradient-based objective (one Gram "
                        "matrix of task gradients per preference) against the plain step instead of balancing")
    args = parser.parse_args()
    variant = {"solver": args.solver} if args.solver else {"gradient_balancing": True}
    torch.manual_seed(0)
    size = (args.height, args.width_pixels)
    images = torch.randn(args.batch, 3, *size, device=args.device)
    targets = [torch.randint(0, 7, (args.batch, *size), device=args.device),
               torch.rand(args.batch, 1, *size, device=args.device)]

    def depth_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (output - target).abs().mean()

    shown = " ".join(f"{key}={value}" for key, value in variant.items())
    print(f"# SegNet width {args.width}, {args.batch} images of {size[0]} x {size[1]}, {args.device}; median of "
          f"{args.repeats} steps after 3 warm-up steps; 'balanced' is {shown}")
    for method in ("palora", "pamal", "lorpman"):
        steps = {}
        for balanced in (False, True):
            torch.manual_seed(0)
            setup = paretorch.build_method(method, SegNetMTL([7, 1], width=args.width, stages=4), 2, epochs=10,
                                           seed=0, **(variant if balanced else {}))
            setup.pm.to(args.device)
            loss = setup.loss([F.cross_entropy, depth_loss], total_steps=100)
            optimizer = torch.optim.Adam(setup.parameter_groups())

            def step(loss=loss, optimizer=optimizer) -> None:
                output = loss((images, targets))
                optimizer.zero_grad()
                output.loss.backward()
                optimizer.step()

            steps[balanced] = step
        plain = median_seconds(steps[False], args.device, args.repeats)
        balanced = median_seconds(steps[True], args.device, args.repeats)
        plain_again = median_seconds(steps[False], args.device, args.repeats)  # interleaved: drift shows here
        print(f"{method:8s} plain {plain:.3f} s/step (again {plain_again:.3f}), balanced {balanced:.3f} s/step, "
              f"ratio {balanced / min(plain, plain_again):.2f}", flush=True)


if __name__ == "__main__":
    main()
