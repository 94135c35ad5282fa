"""A whole job, timed as a user runs it: one process that imports paretorch, builds MultiMNIST, trains one epoch
(with the per-epoch validation of the 11-point grid and the checkpoint) and evaluates the 11-point grid on the
test split. Each job runs in its own process, one after the other, so that each pays its own imports.

Printed per method: the process's wall time and its parts (imports, data (built twice: by the training and by
the evaluation, as ``paretorch train`` then ``paretorch eval`` would), training steps, per-epoch validation with
checkpoint and set-up, test evaluation), for the current code and, in the same run, with this session's two speed-ups
switched off inside the job (``--baseline``): the shared first layer of a multi-forward and the batch-at-a-time
tensor loader. The ratio is baseline / current.

Run: ``python benchmarks/whole_job.py [--methods pamal,palora,lorpman] [--train-size 50000] [--repeats 1]``.
Performance figures only; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

JOB = r"""
import json, sys, tempfile, time
started = time.perf_counter()
from pathlib import Path
import torch
from paretorch import runs
from paretorch.parameterisations import _ensemble, _lowrank
settings = json.loads(sys.argv[1])
if settings.pop("baseline"):
    from torch.utils.data import DataLoader
    _ensemble.shared_input = _lowrank.shared_input = lambda state, x: None
    runs.batch_loader = lambda dataset, batch_size, sampler=None: DataLoader(dataset, batch_size=batch_size,
                                                                             sampler=sampler)
imported = time.perf_counter()
building = []
load_splits = runs.load_splits
def timed_load_splits(config):  # the data is built once by training and once by the evaluation's load_run
    begun = time.perf_counter()
    splits = load_splits(config)
    building.append(time.perf_counter() - begun)
    return splits
runs.load_splits = timed_load_splits
with tempfile.TemporaryDirectory() as folder:
    run_dir = runs.train_run(settings, Path(folder) / "run", progress=False)
    trained = time.perf_counter()
    steps = sum(json.loads(line)["seconds"] for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    front = runs.evaluate_run(runs.load_run(run_dir), "test")
    evaluated = time.perf_counter()
print(json.dumps({"imports": imported - started, "data": sum(building), "steps": steps,
                  "validation_and_rest": trained - imported - building[0] - steps,
                  "test_eval": evaluated - trained - building[1],
                  "hv": front.hypervolume["value"], "threads": torch.get_num_threads()}))
"""

PARTS = ("imports", "data", "steps", "validation_and_rest", "test_eval")


def run_job(settings: dict) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", JOB, json.dumps(settings)], capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", default="pamal,palora,lorpman")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="jobs per variant; the median is printed")
    args = parser.parse_args()
    print(f"# MultiMNIST, train_size {args.train_size}, batch {args.batch_size}, 1 epoch + 11-point test "
          "evaluation, one process per job; seconds (median of --repeats)")
    header = ["method", "variant", "wall", *PARTS, "test HV"]
    print("  ".join(f"{h:>19}" for h in header))
    for method in args.methods.split(","):
        walls = {}
        for variant in ("baseline", "current"):
            settings = {"method": method, "dataset": "multimnist", "epochs": 1, "seed": 0, "batch_size":
                        args.batch_size, "train_size": args.train_size, "baseline": variant == "baseline"}
            results = [run_job(settings) for _ in range(args.repeats)]
            median = {key: statistics.median(r[key] for r in results) for key in ("wall", *PARTS)}
            walls[variant] = median["wall"]
            cells = [method, variant, *(f"{median[key]:.2f}" for key in ("wall", *PARTS)), f"{results[0]['hv']:.4f}"]
            print("  ".join(f"{c:>19}" for c in cells), flush=True)
        print(f"{method}: baseline / current wall time = {walls['baseline'] / walls['current']:.2f}", flush=True)


if __name__ == "__main__":
    main()
