"""A whole job, timed as a user runs it: one process that imports paretorch, builds MultiMNIST, trains one epoch
(with the per-epoch validation of the 11-point grid and the checkpoint) and evaluates the 11-point grid on the
test split. Each job runs in its own process, one after the other, so that each pays its own imports.

Printed per method: the process's wall time and its parts (imports, data (``load_splits``, called twice: by the
training and by the evaluation, as ``paretorch train`` then ``paretorch eval`` would; since MultiMNIST's splits
are composed on first use, their composition counts where it happens: the training's loaders, in
validation_and_rest, and the evaluation's test split), training steps, per-epoch validation with checkpoint and
set-up, test evaluation), for the working tree and, in the same run, for the code at
``--baseline REV`` (a git revision, checked out into a temporary worktree and put first on ``PYTHONPATH``).
The ratio is baseline / current. Each job first calls ``paretorch.allocator.reuse_freed_memory`` as the
``paretorch`` command does; ``--system-malloc`` adds the working tree with glibc's default settings.

Run: ``python benchmarks/whole_job.py [--baseline 8981a15|none] [--methods pamal,palora,lorpman] [--train-size 50000]
[--repeats 1] [--system-malloc] [--set key=value ...]``.
Performance figures only; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paretorch.cli import parse_overrides

JOB = r"""
import json, sys, tempfile, time
started = time.perf_counter()
from pathlib import Path
import torch
from paretorch import runs
try:  # as the paretorch command does when it starts (revisions before paretorch.allocator have no such call)
    from paretorch.allocator import reuse_freed_memory
    reused = reuse_freed_memory()
except ImportError:
    reused = False
settings = json.loads(sys.argv[1])
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
                  "hv": front.hypervolume["value"], "threads": torch.get_num_threads(), "code": runs.__file__,
                  "reused": reused}))
"""

PARTS = ("imports", "data", "steps", "validation_and_rest", "test_eval")


def run_job(settings: dict, source: Path | None, system_malloc: bool = False) -> dict:
    environment = dict(os.environ)
    if system_malloc:
        environment["PARETORCH_SYSTEM_MALLOC"] = "1"
    if source is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), environment.get("PYTHONPATH")]))
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", JOB, json.dumps(settings)], capture_output=True, text=True,
                         check=True, env=environment)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if source is not None and not Path(result["code"]).resolve().is_relative_to(source.resolve()):
        raise SystemExit(f"the job imported {result['code']}, not the code under {source}")
    result["wall"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", default="pamal,palora,lorpman")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="jobs per variant; the median is printed")
    parser.add_argument("--baseline", default="8981a15", help="git revision to compare with ('none': the working "
                        "tree alone)")
    parser.add_argument("--system-malloc", action="store_true", help="also run the working tree with glibc's "
                        "default malloc settings (PARETORCH_SYSTEM_MALLOC=1): the variant 'current, system malloc'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run setting for every job, e.g. --set m=4 (repeatable; read as train's key=value)")
    args = parser.parse_args()
    args.settings = parse_overrides(args.set)
    root = Path(__file__).resolve().parents[1]
    if args.baseline == "none":
        compare(args, {"current": root / "src"})
        return
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "baseline"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), args.baseline],
                       check=True, capture_output=True)
        try:
            compare(args, {"baseline": tree / "src", "current": root / "src"})
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)


def compare(args: argparse.Namespace, sources: dict[str, Path]) -> None:
    print(f"# MultiMNIST, train_size {args.train_size}, batch {args.batch_size}, 1 epoch + 11-point test "
          f"evaluation, one process per job; seconds (median of --repeats); baseline = {args.baseline}; "
          f"settings {args.settings}")
    header = ["method", "variant", "wall", *PARTS, "test HV"]
    print("  ".join(f"{h:>19}" for h in header))
    for method in args.methods.split(","):
        walls = {}
        variants = [(variant, source, False) for variant, source in sources.items()]
        if args.system_malloc:
            variants.append(("system malloc", sources["current"], True))
        for variant, source, system_malloc in variants:
            settings = {"method": method, "dataset": "multimnist", "epochs": 1, "seed": 0, "batch_size":
                        args.batch_size, "train_size": args.train_size} | args.settings
            results = [run_job(settings, source, system_malloc) for _ in range(args.repeats)]
            median = {key: statistics.median(r[key] for r in results) for key in ("wall", *PARTS)}
            walls[variant] = median["wall"]
            cells = [method, variant, *(f"{median[key]:.2f}" for key in ("wall", *PARTS)), f"{results[0]['hv']:.4f}"]
            print("  ".join(f"{c:>19}" for c in cells), flush=True)
        for other in ("baseline", "system malloc"):
            if other in walls:
                print(f"{method}: {other} / current wall time = {walls[other] / walls['current']:.2f}", flush=True)


if __name__ == "__main__":
    main()
