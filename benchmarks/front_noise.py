"""How much of a test front's order is the test sample's: bootstrap the test examples of trained runs.

The ordering figures of ``benchmarks/methods.py`` (non-dominated points of the grid, each task's Spearman
correlation with its weight) come from one test sample. For each run given (a folder kept by ``methods.py
--keep``, continuous methods on data sets with in-memory test tensors such as MultiMNIST), this computes once
which test examples the model gets right at each grid point, then draws ``--resamples`` bootstrap samples of
the test examples (the same draw for every point, as one test set scores them all) and prints the
distribution of the count and of the smaller Spearman. For each point dominated on the whole test set it also
prints its best dominator's smaller per-task gain in paired standard errors (the standard error of the
difference of two accuracies on the same examples): a dominance by less than about 2 is within the test
sample's noise. Read those margins first: the bootstrap count is biased low, since resampling adds noise of its
own, which makes near-ties at a flat end of the front dominate one another.

Run: ``python benchmarks/methods.py ... --keep runs/kept`` then ``python benchmarks/front_noise.py
runs/kept/multimnist-lorpman-seed0 [...] [--resamples 1000]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from paretorch.metrics import nondominated, spearman_monotonicity
from paretorch.preferences import simplex_grid
from paretorch.runs import evaluate_run, load_run


def correct_at_grid(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The grid and a (points, tasks, examples) array: whether the run's model is right on each test example."""
    run = load_run(run_dir)
    pm = run.models
    if isinstance(pm, dict):
        raise SystemExit(f"{run_dir}: a discrete run (one model per preference); give continuous runs")
    images, targets = run.splits.test.tensors
    grid = simplex_grid(pm.num_tasks)
    correct = np.zeros((len(grid), pm.num_tasks, len(images)), dtype=bool)
    pm.eval()
    with torch.no_grad():
        for point, pref in enumerate(grid):
            for start in range(0, len(images), 1000):
                outputs = pm(images[start:start + 1000], pref)
                for task, logits in enumerate(outputs):
                    truth = targets[start:start + 1000, task]
                    correct[point, task, start:start + 1000] = (logits.argmax(1) == truth).numpy()
    # The same accuracies as paretorch eval's, or the bootstrap would describe another front.
    front = evaluate_run(run, "test", save=False)
    gap = np.abs(correct.mean(-1) - front.values).max()
    if gap > 1e-6:
        raise SystemExit(f"{run_dir}: per-example accuracies differ from paretorch eval's by {gap:.2g}")
    return grid.double().numpy(), correct


def dominance_margins(correct: np.ndarray) -> list[tuple[int, int, float]]:
    """For each point dominated on the whole sample: (point, best dominator, its smaller gain in paired SEs)."""
    accuracy = correct.mean(-1)
    examples = correct.shape[-1]
    keep = nondominated(accuracy, maximize=True)
    margins = []
    for point in np.flatnonzero(~keep):
        best = (-1, -np.inf)
        for other in range(len(accuracy)):
            gains = accuracy[other] - accuracy[point]
            if other == point or (gains < 0).any() or not (gains > 0).any():
                continue
            differences = correct[other].astype(np.float64) - correct[point]
            errors = differences.std(-1, ddof=1) / np.sqrt(examples)
            z = float(np.min(np.where(errors > 0, gains / np.maximum(errors, 1e-12), np.inf)))
            best = max(best, (other, z), key=lambda pair: pair[1])
        margins.append((int(point), best[0], best[1]))
    return margins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for run_dir in args.runs:
        grid, correct = correct_at_grid(run_dir)
        points, tasks, examples = correct.shape
        accuracy = correct.mean(-1)
        counts, spearmans = [], []
        flat = correct.reshape(points * tasks, examples).astype(np.float32)
        for _ in range(args.resamples):
            weights = rng.multinomial(examples, np.full(examples, 1.0 / examples)).astype(np.float32)
            resampled = (flat @ weights / examples).reshape(points, tasks)
            counts.append(int(nondominated(resampled, maximize=True).sum()))
            spearmans.append(float(np.nanmin(spearman_monotonicity(grid, resampled))))
        counts_array, spearman_array = np.array(counts), np.array(spearmans)
        print(f"{run_dir.name}: on the test sample {int(nondominated(accuracy, maximize=True).sum())}/{points} "
              f"non-dominated, min Spearman {np.nanmin(spearman_monotonicity(grid, accuracy)):.3f}; "
              f"{args.resamples} bootstrap resamples of its {examples:,} examples: count mean "
              f"{counts_array.mean():.1f} "
              f"(5-95 % {np.percentile(counts_array, 5):.0f}-{np.percentile(counts_array, 95):.0f}, "
              f">= 9 in {100 * (counts_array >= 9).mean():.0f} %), min Spearman mean {spearman_array.mean():.3f} "
              f"(5-95 % {np.percentile(spearman_array, 5):.3f}-{np.percentile(spearman_array, 95):.3f}, "
              f">= 0.9 in {100 * (spearman_array >= 0.9).mean():.0f} %)")
        for point, other, z in dominance_margins(correct):
            print(f"  point {point} {np.round(grid[point], 2).tolist()} {np.round(accuracy[point], 4).tolist()} "
                  f"dominated by point {other} {np.round(accuracy[other], 4).tolist()}: smaller gain {z:.2f} SE")


if __name__ == "__main__":
    main()
