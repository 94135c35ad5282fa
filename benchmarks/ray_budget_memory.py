"""Peak memory and time of one PaLoRA training step against its rays per step, on a CelebA-sized model.

A ResNet-18 (``ResNet18MTL``, 40 binary heads, 64 × 64 RGB inputs as LORPMAN's CelebA) wrapped by
``build_method("palora", ...)``; every ray of a step runs in one batched pass (batch × rays), so activation
memory grows with the rays per step. For each budget (``rays_per_step``; "all" is the whole grid, T + 1 = 41
rays) a fresh process runs --steps training steps on random data and prints the peak resident memory above the
model's, and seconds per step after the first.

Run: ``python benchmarks/ray_budget_memory.py [--batch 16] [--steps 3] [--budgets all,6]``
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time


def one(budget: str, batch: int, steps: int) -> None:
    import torch
    import torch.nn.functional as F

    from paretorch import build_method
    from paretorch.models import ResNet18MTL

    torch.manual_seed(0)
    tasks = 40
    net = ResNet18MTL(num_tasks=tasks, num_classes=2, small_input=False)
    setup = build_method("palora", net, tasks, epochs=1, seed=0,
                         rays_per_step=None if budget == "all" else int(budget))
    losses = [F.cross_entropy] * tasks
    loss = setup.loss(losses, total_steps=100)
    optimizer = torch.optim.Adam(setup.parameter_groups())
    images = torch.randn(batch, 3, 64, 64)
    targets = [torch.randint(0, 2, (batch,)) for _ in range(tasks)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for step in range(steps):
        started = time.perf_counter()
        out = loss((images, targets), step=step)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rays = out.prefs.shape[0]
    print(f"{budget:>6} {rays:>5} {peak - before:>12,.0f} {sum(times[1:]) / max(1, steps - 1):>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--budgets", default="all,6")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.batch, args.steps)
        return
    print(f"# PaLoRA, ResNet-18 with 40 heads, 64x64 inputs, batch {args.batch}, {args.steps} steps, CPU")
    print("budget  rays  peak MiB above model  s/step")
    for budget in args.budgets.split(","):
        subprocess.run([sys.executable, __file__, "--one", budget, "--batch", str(args.batch),
                        "--steps", str(args.steps)], check=True)


if __name__ == "__main__":
    main()
