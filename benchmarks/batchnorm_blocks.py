"""The cost of normalising each preference's block of a multi-forward with its own BatchNorm statistics.

A training step stacks the batch at M preferences (``ParetoModel.multi_forward``); each BatchNorm layer then
normalises every block on its own, as M separate forwards would. This times one forward+backward of that step
against the same step with statistics pooled over the M blocks (what a single plain BatchNorm call computes,
and what paretorch did before), for PaLoRA's low-rank adapters on the ResNet-18 of the benchmarks.

Run: ``python benchmarks/batchnorm_blocks.py [--batch 64] [--m 4] [--size 36]``. Prints the ratio measured in one
run (median of repeated timings, the two ways interleaved); nothing here is a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from paretorch import lowrank
from paretorch.models import ResNet18MTL
from paretorch.parameterisations._norms import _STATE, _PerPreferenceNorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--size", type=int, default=36, help="image side (MultiMNIST's 36)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    pm = lowrank(ResNet18MTL(num_tasks=2, num_classes=10, in_channels=1), 2, rank=1).train()
    x = torch.randn(args.batch, 1, args.size, args.size)
    prefs = torch.distributions.Dirichlet(torch.ones(2)).sample((args.m,))
    norms = [module for module in pm.modules() if isinstance(module, _PerPreferenceNorm)]
    state = norms[0].__dict__[_STATE]

    def step(per_block: bool) -> float:
        for module in norms:  # without the state, a layer normalises the stacked batch at once (pooled)
            module.__dict__[_STATE] = state if per_block else None
        start = time.perf_counter()
        outputs = pm.multi_forward(x, prefs)
        sum(out.pow(2).mean() for out in outputs).backward()
        return time.perf_counter() - start

    for _ in range(2):
        step(True), step(False)
    samples: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for per_block in (True, False):
            samples[per_block].append(step(per_block))
    blocks, pooled = statistics.median(samples[True]), statistics.median(samples[False])
    print(f"PaLoRA ResNet-18, batch {args.batch} × M = {args.m}, {args.size}×{args.size}, "
          f"{torch.get_num_threads()} threads: per-block {blocks * 1e3:.0f} ms, pooled {pooled * 1e3:.0f} ms, "
          f"ratio {blocks / pooled:.3f}")


if __name__ == "__main__":
    main()
