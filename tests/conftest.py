"""Fixtures shared by several test modules, and the threads of a parallel run."""

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (`make test` runs `pytest -n auto`) each worker takes its share of the cores, and so do the
# command-line runs it starts (they inherit OMP_NUM_THREADS): with two processes of two threads each on 2 cores, a
# small SegNet's training step took 2.7 s against 0.02 s, its threads waiting on each other.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _threads = max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)

Checkpoints = tuple[dict, dict, Path]


@pytest.fixture
def whole_and_resumed(tmp_path) -> Callable[..., Checkpoints]:
    """Train ``settings`` through ``paretorch train`` subprocesses twice: 2 epochs in one go, and 1 epoch then
    ``--resume`` to 2. ``whole``, ``first`` and ``resume`` add keys to each command (e.g. a different
    ``workers``). Returns both final checkpoints and the resumed run's directory."""

    def train(settings: Sequence[str], whole: Sequence[str] = (), first: Sequence[str] = (),
              resume: Sequence[str] = ()) -> Checkpoints:
        command = [sys.executable, "-m", "paretorch", "train"]
        uninterrupted, resumed = tmp_path / "whole", tmp_path / "resumed"
        for args in ([str(uninterrupted), *settings, "epochs=2", *whole], [str(resumed), *settings, "epochs=1", *first],
                     [str(resumed), "--resume", "epochs=2", *resume, "--quiet"]):
            done = subprocess.run([*command, *args], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        return (torch.load(uninterrupted / "checkpoint.pt", weights_only=True),
                torch.load(resumed / "checkpoint.pt", weights_only=True), resumed)

    return train
