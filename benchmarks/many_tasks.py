"""Cost and front quality against the number of tasks, on the many-task Adult benchmark (``dataset=adult-many``).

For T in --tasks (default 2, 5, 10, 20, 40) and each method (PaMaL, PaLoRA, LORPMAN, COSMOS, LS), one run is
trained and evaluated on the test split, each in its own process so that its peak memory is its own. Printed
per run: test hypervolume of the accuracies (reference 0; exact, moocore's approximation or the Monte-Carlo
estimator with its standard error, as T requires) on the 11/66/100-point grid, non-dominated points, the
parameters the method adds (and the papers' formula for them), seconds per training step, peak resident
memory. With --plot the curves against T go to a PNG.

Settings (stated in the output): the shared bottom is adapted and the T heads stay shared, as LORPMAN does
(``exclude=heads``); PaLoRA anneals its default rays (T + 1 from 4 tasks: every vertex and the centre; from 6
tasks 6 of them per step, in turn); LS is one model with uniform weights (an LS grid would need at least T
models).

Run: ``python benchmarks/many_tasks.py [--tasks 2,5,10,20,40] [--train-size 8192] [--epochs 3] [--plot F.png]
[--set KEY=VALUE ...]``; ``--set`` overrides a setting of every run, e.g. ``--methods lorpman --set p=1``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = {
    "pamal": {"exclude": ["heads"]},
    "palora": {"exclude": ["heads"]},
    "lorpman": {"exclude": ["heads"]},
    "cosmos": {},
    "ls": {"ls_points": 1},
    # Not in the default set (slower, and the hypernetworks generate the heads too): --methods cpmtl,phn.
    "cpmtl": {},
    "phn": {},
}
DEFAULT_METHODS = ("pamal", "palora", "lorpman", "cosmos", "ls")


def _formula(method: str, report: dict, tasks: int, rank: int) -> int | None:
    # The papers' added-parameter formulas per wrapped Linear layer (m inputs, n outputs): PaMaL (T − 1)·mn,
    # PaLoRA T·r(m + n), LORPMAN T·r(m + n) (its m(dr + rk) with m = T tasks, d × k weights).
    total = 0
    for layer in report["layers"]:
        if layer["layer_type"] != "Linear":
            return None
        weights = layer["base"]  # m·n + n (bias)
        if method == "pamal":
            total += (tasks - 1) * weights
        elif method in ("palora", "lorpman"):
            inputs, outputs = layer["shape"]
            total += tasks * rank * (inputs + outputs)
        else:
            return None
    return total


def one(tasks: int, method: str, args: argparse.Namespace) -> dict:
    from paretorch.cli import parse_overrides
    from paretorch.runs import evaluate_run, load_run, train_run

    options = dict(METHODS[method])
    rank = {"palora": 1, "lorpman": 8}.get(method, 0)
    with tempfile.TemporaryDirectory() as folder:
        config = {"method": method, "dataset": "adult-many", "tasks": tasks, "epochs": args.epochs,
                  "seed": args.seed, "train_size": args.train_size, "batch_size": 256} | options
        config |= parse_overrides(args.set)
        started = time.perf_counter()
        run_dir = train_run(config, Path(folder) / "run", progress=False)
        wall = time.perf_counter() - started
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] if (
            run_dir / "metrics.jsonl").exists() else []
        if not metrics:  # discrete methods log per member
            metrics = [json.loads(line) for line in (run_dir / "member_0" / "metrics.jsonl").read_text().splitlines()]
        run = load_run(run_dir)
        front = evaluate_run(run, "test")
        pm = run.models if not isinstance(run.models, dict) else next(iter(run.models.values()))
        report = pm.parameter_report().to_dict()
        layers = pm.pareto_layers()
        for layer in report["layers"]:  # a hypernetwork's report names the generator, not a wrapped layer
            module = layers[layer["name"]].original_layer() if layer["name"] in layers else None
            layer["shape"] = [getattr(module, "in_features", 0), getattr(module, "out_features", 0)]
        steps = args.epochs * -(-min(args.train_size, len(run.splits.train)) // 256)
        hv = front.hypervolume
        return {
            "tasks": tasks, "method": method, "hv": hv["value"], "hv_method": hv["method"],
            "hv_error": hv.get("std_error"), "nondominated": front.num_nondominated, "points": len(front.values),
            "added": report["added_total"], "formula": _formula(method, report, tasks, rank),
            "base": report["base_total"], "seconds_per_step": sum(m["seconds"] for m in metrics) / steps,
            "wall_seconds": wall,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="2,5,10,20,40")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--train-size", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="write the curves against T to this PNG")
    parser.add_argument("--out", help="also write the rows as JSON lines to this file")
    parser.add_argument("--replot", help="only redraw --plot from the JSON lines of earlier --out files (comma "
                        "separated; rows of several seeds are averaged per T and method)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every run (repeatable)")
    parser.add_argument("--one", nargs=2, metavar=("T", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replot:
        _plot([json.loads(line) for name in args.replot.split(",") for line in Path(name).read_text().splitlines()],
              args.plot)
        return
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args)))
        return
    print(f"# many-task Adult, train_size {args.train_size}, {args.epochs} epochs, batch 256, seed {args.seed}; "
          "heads shared (exclude=heads) for pamal/palora/lorpman, palora's default rays, ls one uniform model"
          + "".join(f"; {setting}" for setting in args.set))
    header = (f"{'T':>3} {'method':<8} {'test HV (acc, ref 0)':>26} {'non-dom':>8} {'added':>9} {'formula':>9} "
              f"{'s/step':>7} {'peak MiB':>8}")
    print(header)
    rows = []
    for tasks in [int(t) for t in args.tasks.split(",")]:
        for method in args.methods.split(","):
            command = [sys.executable, __file__, "--one", str(tasks), method, "--train-size", str(args.train_size),
                       "--epochs", str(args.epochs), "--seed", str(args.seed),
                       *[part for setting in args.set for part in ("--set", setting)]]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(f"{tasks:>3} {method:<8} failed: {result.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            error = f" ± {row['hv_error']:.1e}" if row["hv_error"] else ""
            hv = f"{row['hv']:.3e}{error} {row['hv_method'][:6]}"
            formula = "" if row["formula"] is None else f"{row['formula']:,}"
            print(f"{tasks:>3} {method:<8} {hv:>26} {row['nondominated']:>4}/{row['points']:<3} {row['added']:>9,} "
                  f"{formula:>9} {row['seconds_per_step']:>7.4f} {row['peak_mib']:>8.0f}", flush=True)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(row) + "\n" for row in rows))
    if args.plot and rows:
        _plot(rows, args.plot)


def _seed_means(rows: list[dict]) -> list[dict]:
    """One row per (T, method): the mean of each numeric field over the rows (seeds) given for it."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["tasks"], row["method"]), []).append(row)
    means = []
    for (tasks, method), group in groups.items():
        mean = {"tasks": tasks, "method": method, "seeds": len(group)}
        for key in ("hv", "nondominated", "added", "seconds_per_step", "peak_mib"):
            values = [row[key] for row in group if row.get(key) is not None]
            mean[key] = sum(values) / len(values) if values else None
        means.append(mean)
    return means


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _seed_means(rows)
    # Hypervolumes of accuracies shrink geometrically with T (each is about the product of T accuracies), so the
    # first panel shows each method's hypervolume relative to LS's at the same T.
    reference = {row["tasks"]: row["hv"] for row in rows if row["method"] == "ls"}
    for row in rows:
        row["hv_vs_ls"] = row["hv"] / reference[row["tasks"]] if reference.get(row["tasks"]) else None
    panels = [("hv_vs_ls", "test hypervolume / LS's", False),
              ("nondominated", "non-dominated points (of 11/100)", False),
              ("added", "added parameters", True), ("seconds_per_step", "seconds per step", True),
              ("peak_mib", "peak memory (MiB)", False)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for axis, (key, label, log) in zip(axes, panels, strict=True):
        for method in dict.fromkeys(row["method"] for row in rows):
            points = [(row["tasks"], row[key]) for row in rows if row["method"] == method and row[key]]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=method)
        axis.set_xlabel("number of tasks T")
        axis.set_title(label, fontsize=9)
        axis.set_xscale("log")
        ticks = sorted({row["tasks"] for row in rows})
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.minorticks_off()
        if log:
            axis.set_yscale("log")
    seeds = max(row["seeds"] for row in rows)
    if seeds > 1:
        figure.suptitle(f"means over {seeds} seeds", fontsize=9)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
