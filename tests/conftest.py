"""Fixtures shared by several test modules."""

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

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
