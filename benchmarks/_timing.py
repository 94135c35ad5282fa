"""Shared timing helper of the benchmark scripts: median wall time of a call, synchronising CUDA."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(call: Callable[[], object], device: str, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
