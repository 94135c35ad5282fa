"""The recipes for training in your own framework (examples/): PyTorch Lightning and Hugging Face Accelerate each
train a front with ParetoLoss and save it."""

import json
import sys
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
