"""Print the figures that tests/test_training.py asserts on the synthetic conflicting two-task problem:
non-dominated points (of 11), Spearman per task and hypervolume (MSE, reference (20, 20)) per method, against
the best single linear-scalarisation model. Run: ``python benchmarks/synthetic_fronts.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_training as synthetic
from paretorch.training import evaluate_front


def main() -> None:
    validation = DataLoader(synthetic.conflicting_data(1, 256), batch_size=256)
    best = 0.0
    for weights in ([0.1, 0.9], [0.5, 0.5], [0.9, 0.1]):
        trainer, loader = synthetic.train("ls", weights=weights)
        trainer.fit(loader)
        grid = torch.tensor([weights])
        best = max(best, evaluate_front(trainer.pm, validation, synthetic.METRICS, grid=grid,
                                        ref=synthetic.REF).hypervolume["value"])
    print(f"best single LS model: HV {best:.2f}")
    for method, options in [("pamal", {}), ("palora", {"scale": 4.0}), ("lorpman", {"scale": 2.0}),
                            ("cpmtl", {"m": 2}), ("cpmtl", {"m": 2, "solver": "moo"}), ("phn", {"m": 2}),
                            ("phn", {"m": 2, "solver": "epo"}), ("cosmos", {"conditioning": "film"}),
                            ("cosmos", {"model": synthetic.SharedMLP})]:
        trainer, loader = synthetic.train(method, **options)
        trainer.fit(loader)
        front = evaluate_front(trainer.pm, validation, synthetic.METRICS, ref=synthetic.REF)
        label = method + "".join(f" {k}={getattr(v, '__name__', v)}" for k, v in options.items() if k != "m")
        print(f"{label:<28} non-dominated {front.num_nondominated}/11, spearman "
              f"{[round(s, 3) for s in front.spearman]}, HV {front.hypervolume['value']:.2f}")


if __name__ == "__main__":
    main()
