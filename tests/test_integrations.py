"""The recipes for training in your own framework (examples/): PyTorch Lightning and Hugging Face Accelerate each
train a front with ParetoLoss and save it."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import accelerate_front  # noqa: E402
import lightning_front  # noqa: E402


@pytest.mark.parametrize("recipe", [lightning_front, accelerate_front], ids=["lightning", "accelerate"])
def test_recipe_trains_a_front_and_saves_it(recipe, tmp_path):
    front = recipe.main(epochs=8, out=tmp_path)
    saved = json.loads((tmp_path / "front_test.json").read_text())
    assert saved["metric_names"] == ["left_mse", "right_mse"]
    values = np.asarray(front.values)
    assert np.isfinite(values).all()
    # A steerable front: more weight on a task gives it a lower loss, across the whole grid.
    assert front.spearman[0] < -0.8 and front.spearman[1] < -0.8, front.spearman
    assert front.num_nondominated >= 6


def _on_two_processes(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The example ``script`` under ``torchrun`` with 2 CPU processes; it must succeed."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = subprocess.run([*launcher, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_accelerate_recipe_on_two_processes_trains_the_model_of_one_process(tmp_path):
    # The recipe's model is LORPMAN, frozen after 6 of its 8 epochs: the DDP wrapper Accelerate built must be
    # rebuilt then, and the loss must run through it, or the processes train apart without a word.
    one = accelerate_front.main(epochs=8, out=tmp_path / "one")
    _on_two_processes("accelerate_front.py", "--epochs", "8", "--out", str(tmp_path / "two"))
    two = json.loads((tmp_path / "two" / "front_test.json").read_text())
    # Float rounding of the averaged gradients only (about 1e-7 on the weights).
    np.testing.assert_allclose(np.asarray(two["values"]), np.asarray(one.values), rtol=1e-5, atol=1e-6)


def test_lightning_recipe_on_two_processes_trains_a_freezing_preset_to_one_model(tmp_path):
    # LORPMAN freezes its main network after 3 of 4 epochs: under plain "ddp" the next step stops with
    # Lightning's unused-parameters error, so the recipe picks the strategy that allows it. Every rank must end
    # with the same weights (DDP averaged the gradients) and rank 0 alone writes the front.
    done = _on_two_processes("lightning_front.py", "--epochs", "4", "--method", "lorpman", "--devices", "2", "--out",
                             str(tmp_path))
    # Each rank prints its front's table: every line twice (the two ranks' fronts are equal), in whatever order
    # the two processes' output reached the pipe.
    lines = Counter(line for line in done.stdout.splitlines() if line.strip())
    assert lines and set(lines.values()) == {2}, done.stdout[-2000:]
    assert any(line.startswith("hypervolume") for line in lines)
    saved = json.loads((tmp_path / "front_test.json").read_text())
    assert np.isfinite(np.asarray(saved["values"])).all()
