"""The ``paretorch`` command line. Errors a user can fix print as one line and exit with status 2."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from paretorch.allocator import reuse_freed_memory
from paretorch.errors import ParetorchError

__all__ = ["flatten_tables", "main", "parse_overrides"]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as TOML (``lr=1e-3``, ``weights=[0.3, 0.7]``) or else as text, and
    Python's ``True`` and ``False`` as TOML's ``true`` and ``false``.

    >>> parse_overrides(["lr=1e-3", "residual=False", "method=phn"])
    {'lr': 0.001, 'residual': False, 'method': 'phn'}
    """
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, text = key.strip(), raw.strip()
        if not sep or not name or not text:
            raise ParetorchError(f"malformed override {item!r}; write key=value, for example lr=0.001")
        if text in ("True", "False"):  # a Python user's spelling; as text it would be refused as no bool
            values[name] = text == "True"
            continue
        try:
            values[name] = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            values[name] = raw
    return values


def _read_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    file = Path(path)
    if not file.exists():
        raise ParetorchError(f"config file {file} does not exist")
    try:
        content = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ParetorchError(f"cannot read config file {file}: {reason}") from error
    except tomllib.TOMLDecodeError as error:
        raise ParetorchError(f"config file {file} is not valid TOML: {error}") from error
    return flatten_tables(content, str(file))


def flatten_tables(content: dict[str, Any], source: str = "the config") -> dict[str, Any]:
    """The settings of a TOML config, its tables (``[data]``, ``[training]`` …) merged into one level: tables
    only group keys, and a key set in two places is refused.

    >>> flatten_tables({"method": "palora", "data": {"dataset": "adult", "batch_size": 64}})
    {'method': 'palora', 'dataset': 'adult', 'batch_size': 64}
    """
    flat: dict[str, Any] = {}
    places: dict[str, str] = {}

    def visit(table: dict[str, Any], where: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                visit(value, f"{where}.{key}" if where else f"[{key}]")
                continue
            if key in flat:
                raise ParetorchError(f"{source} sets {key!r} twice ({places[key]} and {where or 'the top level'}); "
                                     "keep one")
            flat[key], places[key] = value, where or "the top level"

    visit(content, "")
    return flat


def _parse_preference(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as error:
        raise ParetorchError(f"preference {text!r} must be comma-separated numbers, for example 0.3,0.7") from error
    if not all(math.isfinite(v) for v in values):
        raise ParetorchError(f"preference {text!r} must hold finite numbers, for example 0.3,0.7")
    return values


def _train(args: argparse.Namespace) -> int:
    from paretorch.catalogue import settings_text
    from paretorch.options import RUN_OPTIONS, protocol_settings
    from paretorch.runs import check_data_source, resolve_config, train_run

    values = _read_config(args.config) | parse_overrides(args.overrides)
    protocol = {} if args.resume else protocol_settings(values)
    if protocol and os.environ.get("RANK", "0") == "0":
        # A wrong setting or a missing data folder is refused before the protocol is announced.
        check_data_source(resolve_config(protocol | values).values)
        method = values.get("method", RUN_OPTIONS["method"].default)
        print(f"{values['dataset']} with {method}: the papers' protocol sets {settings_text(protocol, quote=False)} "
              "(give a key to change it)")
    directory = train_run(values, args.run_dir, resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0, not one per process
        print(f"trained: {directory}  (next: paretorch eval {directory})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from paretorch._files import locked
    from paretorch.runs import evaluate_run, load_run

    run = load_run(args.run)
    if args.out is None:
        with locked(args.run):  # it writes the front files: not while a train writes the same directory
            front = evaluate_run(run, args.split)
    else:  # the run directory is only read (a shared one may not be writable)
        Path(args.out).mkdir(parents=True, exist_ok=True)  # an unusable --out fails before the evaluation, not after
        front = evaluate_run(run, args.split, out=args.out)
    print(front.table())
    print(f"saved {Path(args.out or args.run) / f'front_{args.split}.json'} and .csv")
    return 0


def _front_of(run: str, split: str):  # type: ignore[no-untyped-def]
    from paretorch._files import locked
    from paretorch.runs import evaluate_run, load_run
    from paretorch.training import Front

    saved = Path(run) / f"front_{split}.json"
    if saved.exists():
        return Front.load(saved)
    loaded = load_run(run)
    if not os.access(run, os.W_OK):  # a shared run directory this user cannot write: evaluate, keep nothing
        return evaluate_run(loaded, split, save=False)
    with locked(run):
        return evaluate_run(loaded, split)


def _plot(args: argparse.Namespace) -> int:
    from paretorch.plotting import plot_fronts

    fronts = [_front_of(run, args.split) for run in args.runs]
    out = Path(args.out) if args.out else Path(args.runs[0]) / f"front_{args.split}.png"
    plot_fronts(fronts, [Path(run).name for run in args.runs], out, title=f"{args.split} front")
    print(f"wrote {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import torch

    from paretorch.preferences import as_preference
    from paretorch.runs import load_run, recalibration_data

    if not args.out.strip() or Path(args.out).is_dir():
        raise ParetorchError(f"--out {args.out!r} must be a file path, for example model.safetensors")
    run = load_run(args.run)
    pref = as_preference(_parse_preference(args.preference), run.splits.num_tasks)
    if isinstance(run.models, dict):
        # A discrete method: export the trained model whose preference is closest to the one asked for.
        nearest = min(run.models, key=lambda p: float(torch.dist(torch.tensor(p), pref)))
        print(f"{run.config['method']} is discrete: exporting its model trained at {list(nearest)}")
        pm = run.models[nearest]
        # The metadata must name the preference this model was trained at, not the one asked for.
        pref = torch.tensor(nearest)
    else:
        pm = run.models
    path = pm.export(args.out, pref, recalibrate=recalibration_data(run.config, run.splits))
    print(f"wrote {path}: a plain {type(pm.model).__name__} state dict at preference "
          f"{[round(w, 6) for w in pref.tolist()]}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from paretorch.training.evaluation import TABLE_TASKS, numbers_text, on_common_reference

    # Every hypervolume is taken from the same reference point, so the column compares.
    fronts = on_common_reference([_front_of(run, args.split) for run in args.runs], args.runs)
    names = fronts[0].metric_names
    tasks = ", ".join(names) if len(names) <= TABLE_TASKS else f"{len(names)} tasks ({names[0]} … {names[-1]})"
    print(f"{len(fronts)} runs on {tasks}; hypervolume reference {numbers_text(fronts[0].ref)}")
    header = f"{'run':<28} {'method':<8} {'HV':>8} {'non-dom':>8} {'spearman':>18} {'params':>10} {'overhead':>9} " \
             f"{'train s':>8}"
    print(header)
    for run, front in zip(args.runs, fronts, strict=True):
        extra = front.extra
        # Each task's correlation, or from many tasks the least ordered one's.
        spearman = (",".join(f"{s:.2f}" for s in front.spearman) if len(front.spearman) <= TABLE_TASKS else
                    f"min {min((s for s in front.spearman if not math.isnan(s)), default=math.nan):.2f}")
        seconds = extra.get("train_seconds")
        print(f"{Path(run).name:<28} {extra.get('method', '?'):<8} {front.hypervolume_text():>8} "
              f"{front.num_nondominated:>4}/{len(front.values):<3} {spearman:>18} {extra.get('parameters', 0):>10,} "
              f"{extra.get('overhead_percent', 0):>8.1f}% {seconds if seconds is None else round(seconds, 1)!s:>8}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from paretorch.plotting import plot_fronts
    from paretorch.runs import evaluate_run, load_run, train_run

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ParetorchError(f"{out} already holds a demo; pass --overwrite or --out another folder")
    if out.exists() and args.overwrite:
        import shutil

        shutil.rmtree(out)
    common = {"dataset": "multimnist", "train_size": args.train_size, "val_size": 1000, "test_size": 2000,
              "epochs": args.epochs, "seed": args.seed, "batch_size": 128}
    started = time.perf_counter()
    fronts = []
    for method, options in (("palora", {"scale": args.scale, "m": 3}), ("ls", {"ls_points": 1})):
        print(f"training {method} on the embedded MultiMNIST ({args.train_size} images, {args.epochs} epochs)…")
        directory = train_run(common | {"method": method} | options, out / method, progress=not args.quiet)
        front = evaluate_run(load_run(directory), "test")
        fronts.append(front)
        print(f"\n{method} test front (accuracies; hypervolume reference 0):")
        print(front.table())
    png = plot_fronts(fronts, ["palora", "ls (uniform weights)"], out / "front_test.png",
                      title="MultiMNIST test accuracy: PaLoRA front vs linear scalarisation")
    print(f"\nPaLoRA hypervolume {fronts[0].hypervolume_text()} vs linear scalarisation "
          f"{fronts[1].hypervolume_text()}; {time.perf_counter() - started:.0f} s in all")
    print(f"outputs in {out}/ (runs, fronts as JSON/CSV, plot {png.name}); export a model at a trade-off with:\n"
          f"  paretorch export {out / 'palora'} --preference 0.3,0.7 --out model.safetensors")
    return 0


def _list(args: argparse.Namespace) -> int:
    from paretorch.catalogue import catalogue

    print(catalogue(args.section, why=args.why))
    return 0


def _train_epilog() -> str:
    import textwrap

    from paretorch.catalogue import listing_width, option_lines
    from paretorch.methods import method_names
    from paretorch.options import DATASET_PROTOCOLS, DATASET_TASKS, METHOD_PROTOCOLS, RUN_OPTIONS, TRAIN_OPTIONS

    width = listing_width()
    protocol_methods = dict.fromkeys(method for methods in METHOD_PROTOCOLS.values() for method in methods)
    summary = [
        f"methods: {', '.join(method_names())} (their own options: paretorch list methods; what each default was "
        "chosen on: paretorch list NAME --why)",
        f"datasets: {', '.join(DATASET_TASKS)} (paretorch list datasets; a new run on {', '.join(DATASET_PROTOCOLS)} "
        "takes the papers' epochs, batch size, optimiser and schedule there, and on "
        f"{', '.join(METHOD_PROTOCOLS)} the papers' settings of {', '.join(protocol_methods)}, for the keys it does "
        "not give)",
    ]
    return "\n".join([
        *(line for text in summary for line in textwrap.wrap(text, width, subsequent_indent="  ")),
        "", "run keys:", *option_lines(RUN_OPTIONS.values(), width=width),
        "", "training keys (the method preset sets its own defaults, e.g. lr):",
        *option_lines(TRAIN_OPTIONS.values(), width=width),
        "", "example: paretorch train runs/palora method=palora dataset=multimnist epochs=10 train_size=10000",
        "         paretorch train runs/palora --config examples/palora_multimnist.toml lr=3e-3",
    ])


def _toy(args: argparse.Namespace) -> int:
    from paretorch.demos import format_toy_demo, run_toy_demo

    result = run_toy_demo(steps=args.steps, seed=args.seed)
    print(format_toy_demo(result))
    return 0 if result.passed else 1


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (and exit status 2), like every other paretorch error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"paretorch: error: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, else argparse's one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="paretorch", description="Pareto front learning for multi-task deep learning.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a method on a dataset into a run directory",
                                description="Train a method on a dataset into a run directory. Settings are "
                                "key=value pairs\n(values read as TOML) over an optional --config file.",
                                epilog=_train_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("run_dir", help="run directory (config, checkpoints, metrics log, fronts)")
    train.add_argument("overrides", nargs="*",
                       help="key=value settings over the config file, e.g. method=pamal lr=1e-3")
    train.add_argument("--config", help="TOML file with the run's settings")
    train.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("eval", help="evaluate a run's front, print it as a table and save it")
    evaluate.add_argument("run", help="a run directory made by paretorch train")
    evaluate.add_argument("--split", choices=("val", "test"), default="test", help="the split (default test)")
    evaluate.add_argument("--out", help="folder for front_SPLIT.json and .csv (default: the run directory; "
                          "another folder leaves the run directory untouched, e.g. a shared one)")
    evaluate.set_defaults(handler=_eval)

    plot = commands.add_parser("plot", help="draw the front(s) of one or more runs as PNG")
    plot.add_argument("runs", nargs="+", help="run directories; each run's saved front, evaluated first if missing")
    plot.add_argument("--split", choices=("val", "test"), default="test", help="the split (default test)")
    plot.add_argument("--out", help="PNG path (default: RUN/front_SPLIT.png)")
    plot.set_defaults(handler=_plot)

    export = commands.add_parser("export", help="write the plain merged model for one trade-off as safetensors")
    export.add_argument("run", help="a run directory of a steerable method (or a discrete one's nearest model)")
    export.add_argument("--preference", required=True, help="comma-separated weights, e.g. 0.3,0.7")
    export.add_argument("--out", required=True, help="output .safetensors path")
    export.set_defaults(handler=_export)

    compare = commands.add_parser("compare", help="one table of HV, non-dominated points, Spearman, size, time")
    compare.add_argument("runs", nargs="+", help="run directories with the same tasks")
    compare.add_argument("--split", choices=("val", "test"), default="test", help="the split (default test)")
    compare.set_defaults(handler=_compare)

    demo = commands.add_parser("demo", help="the main job: PaLoRA vs linear scalarisation on embedded MultiMNIST")
    demo.add_argument("--out", default="paretorch-runs/demo", help="output folder (default paretorch-runs/demo)")
    demo.add_argument("--epochs", type=_int_at_least(1), default=5)
    demo.add_argument("--train-size", type=_int_at_least(1), default=10000)
    demo.add_argument("--seed", type=_int_at_least(0), default=0)
    demo.add_argument("--scale", type=_positive_float, default=5.0, help="PaLoRA's α (default 5)")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=_demo)

    listing = commands.add_parser("list", help="the methods with their options, the datasets, models and keys")
    listing.add_argument("section", nargs="?", help="print only this part: methods, datasets, models, keys, or one "
                         "method's options (e.g. lorpman)")
    listing.add_argument("--why", action="store_true", help="add what was measured to choose each default")
    listing.set_defaults(handler=_list)

    toy = commands.add_parser("toy", help="LORPMAN's illustrative two-parameter example (seconds)")
    toy.add_argument("--steps", type=_int_at_least(1), default=1000)
    toy.add_argument("--seed", type=_int_at_least(0), default=0)
    toy.set_defaults(handler=_toy)
    return parser


def _one_line(error: BaseException) -> str:
    if isinstance(error, ParetorchError):
        return str(error)
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return (f"{error.strerror or error}{':' if where else ''}{where}; check the path exists, is writable "
                "and has free space")
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:300]} (rerun with --debug for the traceback)"


def _detach_stdout() -> None:
    # Without a file descriptor behind sys.stdout (captured output) there is nothing left to flush.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 an error reported in one line)."""
    parser = build_parser()
    # key=value overrides may come after options (train RUN --config f.toml lr=0.01): collect them all.
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and (args.command != "train" or any(item.startswith("-") for item in extra)):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as stop:  # --help (0) or a usage error (2, already printed as one line)
        return int(stop.code or 0)
    if extra:
        args.overrides = [*args.overrides, *extra]
    reuse_freed_memory()  # this process is ours: its CPU tensors are reused, not faulted in again each step
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("paretorch: interrupted; checkpoints written so far are kept (resume with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output went away (paretorch list | head): stop quietly, as a program killed by SIGPIPE
        # does, instead of reporting a file error; the interpreter's last flush then writes to /dev/null.
        _detach_stdout()
        return 141
    except Exception as error:  # every error ends as one line; the traceback only on request
        if args.debug:
            raise
        message = " ".join(_one_line(error).split())  # one line, whatever the exception's text held
        print(f"paretorch: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
