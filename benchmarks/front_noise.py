"""How much of a test front's order is the test sample's: standard errors and a bootstrap of trained runs' tests.

The ordering figures of ``benchmarks/methods.py`` (non-dominated points of the grid, each task's Spearman
correlation with its weight) come from one test sample. For each MultiMNIST or MultiFashion run given (a folder
kept by ``methods.py --keep``; continuous methods), this computes once which test images the model gets right at
each grid point. For each point dominated on the whole test set it prints its best dominator's smaller per-task
gain in standard errors of that gain (the difference of two accuracies on the same images).

MultiMNIST's test images are composed from a pool of test digits (10,000 images from 1,000 digits: each digit
in about 20 images), and whether a model reads an image right depends much on its digits, so the images are not
independent draws. The standard errors are therefore clustered by digit (two-way, by the digit at each position,
by inclusion-exclusion over the positions; the digits are recomputed from the run's seed and checked against
the stored images), and printed beside the naive ones that treat images as independent. A gain of less than
about 2 clustered standard errors is within the noise of drawing 1,000 test digits.

It also resamples the test digits ``--resamples`` times with replacement (each image weighted by the product of
its digits' draw counts, as a pigeonhole bootstrap of a crossed design) and prints the distribution of the
count and of the smaller Spearman. Read the margins first: the bootstrap count is biased low, since resampling
adds noise of its own, which makes near-ties at a flat end of the front dominate one another.

Run: ``python benchmarks/methods.py ... --keep runs/kept`` then ``python benchmarks/front_noise.py
runs/kept/multimnist-lorpman-seed0 [...] [--resamples 1000]``.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from paretorch._random import distinct_picks
from paretorch.data import compose_multi_mnist, load_mnist_digits
from paretorch.metrics import nondominated, spearman_monotonicity
from paretorch.options import COMPOSED_DATASETS
from paretorch.preferences import simplex_grid
from paretorch.runs import LoadedRun, evaluate_run, load_run

# multi_mnist composes the training, validation and test images with the run's seed + 0, 1 and 2.
_TEST_SEED_OFFSET = 2


def test_digits(run: LoadedRun) -> tuple[np.ndarray, int]:
    """Which digit of the test pool each test image shows at each position (images × positions), and the
    pool's size."""
    config = run.config
    if config["dataset"] not in COMPOSED_DATASETS:
        raise SystemExit(f"{run.directory}: a {config['dataset']} run; give runs on composed images "
                         f"({', '.join(COMPOSED_DATASETS)})")
    pool = load_mnist_digits(config["data_source"], seed=config["seed"])
    images = run.splits.test.tensors[0]
    seed = config["seed"] + _TEST_SEED_OFFSET
    picks = distinct_picks(seed, len(pool.test_images), len(images), run.splits.num_tasks)
    recomposed = compose_multi_mnist(pool.test_images, pool.test_labels, len(images), run.splits.num_tasks, seed)
    if not torch.equal(recomposed.tensors[0], images):
        raise SystemExit(f"{run.directory}: its test images are not composed as this script assumes")
    return picks, len(pool.test_images)


def correct_at_grid(run: LoadedRun) -> tuple[np.ndarray, np.ndarray]:
    """The grid and a (points, tasks, images) array: whether the run's model is right on each test image."""
    pm = run.models
    if isinstance(pm, dict):
        raise SystemExit(f"{run.directory}: a discrete run (one model per preference); give continuous runs")
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
    # The same accuracies as paretorch eval's, or the figures would describe another front.
    front = evaluate_run(run, "test", save=False)
    gap = np.abs(correct.mean(-1) - front.values).max()
    if gap > 1e-6:
        raise SystemExit(f"{run.directory}: per-image accuracies differ from paretorch eval's by {gap:.2g}")
    return grid.double().numpy(), correct


def clustered_error(differences: np.ndarray, digits: np.ndarray) -> float:
    """The standard error of ``differences.mean()`` with images clustered by each position's digit.

    Multi-way clustering (Cameron, Gelbach and Miller 2011): the sum over non-empty sets S of positions of
    (-1)^(|S|+1) times the variance clustered by the digits at S; with no shared digits it is the naive one.

    >>> rng = np.random.default_rng(0)
    >>> digits = np.stack([np.arange(400), (np.arange(400) + 1) % 400], axis=1)  # no image shares a pair
    >>> values = rng.normal(size=400)
    >>> bool(np.isclose(clustered_error(values, digits), values.std() / np.sqrt(400)))
    True
    >>> shared = np.stack([np.arange(400) // 20, 20 + np.arange(400) % 20], axis=1)  # each digit in 20 images
    >>> bool(clustered_error(np.repeat(values[:20], 20), shared) > 3 * np.repeat(values[:20], 20).std() / 20)
    True
    """
    count = len(differences)
    residuals = differences - differences.mean()
    variance = 0.0
    positions = range(digits.shape[1])
    for size in range(1, digits.shape[1] + 1):
        for subset in itertools.combinations(positions, size):
            _, groups = np.unique(digits[:, subset], axis=0, return_inverse=True)
            sums = np.bincount(groups.ravel(), weights=residuals)
            variance += (-1) ** (size + 1) * float((sums**2).sum()) / count**2
    return float(np.sqrt(max(variance, 0.0)))


def dominance_margins(correct: np.ndarray, digits: np.ndarray) -> list[tuple[int, int, float, float]]:
    """For each point dominated on the whole sample: (point, best dominator, its smaller gain in clustered and in
    naive standard errors)."""
    accuracy = correct.mean(-1)
    keep = nondominated(accuracy, maximize=True)
    margins = []
    for point in np.flatnonzero(~keep):
        best = (-1, -np.inf, -np.inf)
        for other in range(len(accuracy)):
            gains = accuracy[other] - accuracy[point]
            if other == point or (gains < 0).any() or not (gains > 0).any():
                continue
            clustered, naive = [], []
            for task, gain in enumerate(gains):
                differences = correct[other, task].astype(np.float64) - correct[point, task]
                naive_error = differences.std(ddof=1) / np.sqrt(len(differences))
                clustered.append(gain / clustered_error(differences, digits) if gain > 0 else 0.0)
                naive.append(gain / naive_error if gain > 0 else 0.0)
            if min(clustered) > best[1]:
                best = (other, min(clustered), min(naive))
        margins.append((int(point), *best))
    return margins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for run_dir in args.runs:
        run = load_run(run_dir)
        digits, pool = test_digits(run)
        grid, correct = correct_at_grid(run)
        points, tasks, images = correct.shape
        accuracy = correct.mean(-1)
        flat = correct.reshape(points * tasks, images).astype(np.float64)
        counts, spearmans = [], []
        for _ in range(args.resamples):
            drawn = rng.multinomial(pool, np.full(pool, 1.0 / pool)).astype(np.float64)
            weights = drawn[digits].prod(axis=1)
            resampled = (flat @ weights / weights.sum()).reshape(points, tasks)
            counts.append(int(nondominated(resampled, maximize=True).sum()))
            spearmans.append(float(np.nanmin(spearman_monotonicity(grid, resampled))))
        counts_array, spearman_array = np.array(counts), np.array(spearmans)
        print(f"{run_dir.name}: on the test sample {int(nondominated(accuracy, maximize=True).sum())}/{points} "
              f"non-dominated, min Spearman {np.nanmin(spearman_monotonicity(grid, accuracy)):.3f}; "
              f"{args.resamples} resamples of its {pool:,} test digits ({images:,} images): count mean "
              f"{counts_array.mean():.1f} (5-95 % {np.percentile(counts_array, 5):.0f}-"
              f"{np.percentile(counts_array, 95):.0f}), min Spearman mean {spearman_array.mean():.3f} "
              f"(5-95 % {np.percentile(spearman_array, 5):.3f}-{np.percentile(spearman_array, 95):.3f})")
        for point, other, clustered, naive in dominance_margins(correct, digits):
            print(f"  point {point} {np.round(grid[point], 2).tolist()} {np.round(accuracy[point], 4).tolist()} "
                  f"dominated by point {other} {np.round(accuracy[other], 4).tolist()}: smaller gain "
                  f"{clustered:.2f} clustered SE ({naive:.2f} naive)")


if __name__ == "__main__":
    main()
