"""The ``paretorch`` command line. Errors a user can fix print as one line and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from paretorch.errors import ParetorchError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from paretorch.demos import format_toy_demo, run_toy_demo

    result = run_toy_demo(steps=args.steps, seed=args.seed)
    print(format_toy_demo(result))
    return 0 if result.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretorch", description="Pareto front learning for multi-task deep learning."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main job on embedded data and print the learned front")
    demo.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ParetorchError as error:
        print(f"paretorch: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
