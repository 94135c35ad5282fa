"""How much refitting BatchNorm's running statistics at each preference changes a trained run's front.

A steerable model keeps one set of running statistics, averaged in training over every preference drawn.
This script evaluates a trained run's test front three ways: with those statistics, and refit at each grid
preference on the first N training examples for each N given (the command line's own evaluation refits on a
seeded draw of ``recalibration_examples``, default 512). Printed per way: hypervolume, non-dominated points,
per-task Spearman, seconds, and the accuracies.

Run: ``paretorch train runs/r18 method=pamal model=resnet18 train_size=4000 val_size=1000 test_size=2000
epochs=3`` then ``python benchmarks/batchnorm_recalibration.py runs/r18 --examples 512,2048``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from paretorch.loading import batch_loader
from paretorch.runs import _evaluation_batch, load_run, task_metrics
from paretorch.training import evaluate_front, recalibration_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run directory of a continuous method")
    parser.add_argument("--examples", default="512,2048", help="comma-separated training examples to refit on")
    parser.add_argument("--batch", type=int, default=256, help="batch size of the refit")
    args = parser.parse_args()
    run = load_run(args.run)
    if isinstance(run.models, dict):
        raise SystemExit(f"{args.run} is a discrete run: each of its models has statistics of its own")
    test = batch_loader(run.splits.test, _evaluation_batch(run.config))
    ways: list[tuple[str, int]] = [("statistics of training", 0)]
    ways += [(f"refit on {n} examples", n) for n in (int(v) for v in args.examples.split(","))]
    for label, examples in ways:
        refit = recalibration_batches(batch_loader(run.splits.train, args.batch), examples) if examples else None
        start = time.perf_counter()
        front = evaluate_front(run.models, test, task_metrics(run.splits), recalibrate=refit)
        seconds = time.perf_counter() - start
        print(f"{label}: HV {front.hypervolume_text()}, non-dominated {front.num_nondominated}/{len(front.values)}, "
              f"Spearman {[round(s, 2) for s in front.spearman]}, {seconds:.0f} s")
        print("  " + " ".join(f"({a:.4f}, {b:.4f})" if len(row) == 2 else str(np.round(row, 4).tolist())
                              for row in front.values for a, b in [tuple(row[:2])]))


if __name__ == "__main__":
    main()
