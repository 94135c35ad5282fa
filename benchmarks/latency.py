"""Inference latency at one trade-off (as CPMTL's Table 1): the plain model, ``pm(x, pref)`` (weights generated
or mixed on every call) and ``pm.at(pref)`` (merged once, then a plain forward), plus the one-off cost of
``at``. Run: ``python benchmarks/latency.py [--device cuda] [--batch 256]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch

from _timing import median_seconds
from paretorch import conditioned, ensemble, hypernetwork, lowrank
from paretorch.models import MultiLeNet


def timed(call: Callable[[], object], device: str, repeats: int = 50) -> float:
    return 1000 * median_seconds(call, device, repeats, warmup=5)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = MultiLeNet().to(args.device).eval()
    x = torch.randn(args.batch, 1, 28, 28, device=args.device)
    pref = torch.tensor([0.3, 0.7], device=args.device)
    plain_ms = timed(lambda: net(x), args.device)
    print(f"device={args.device} batch={args.batch}; plain MultiLeNet forward {plain_ms:.3f} ms")
    print(f"{'parameterisation':<26} {'pm(x, pref) ms':>15} {'ratio':>7} {'at(pref) once ms':>17} "
          f"{'merged fwd ms':>14} {'ratio':>7}")
    for name, pm in {
        "pamal (ensemble)": ensemble(net, 2), "palora r=1": lowrank(net, 2, rank=1),
        "cpmtl hypernetwork": hypernetwork(net, 2), "cpmtl chunked (2000)": hypernetwork(net, 2, chunk_size=2000),
        "cosmos (input)": conditioned(net, 2),
    }.items():
        pm = pm.to(args.device).eval()
        steered = timed(lambda pm=pm: pm(x, pref), args.device)
        merge = timed(lambda pm=pm: pm.at(pref), args.device, repeats=10)
        merged = pm.at(pref)
        merged_ms = timed(lambda merged=merged: merged(x), args.device)
        print(f"{name:<26} {steered:>15.3f} {steered / plain_ms:>7.2f} {merge:>17.3f} {merged_ms:>14.3f} "
              f"{merged_ms / plain_ms:>7.2f}")


if __name__ == "__main__":
    main()
