"""The built-in loops' precision setting: ``precision="bf16-mixed" | "16-mixed"`` (ParetoLoss, Trainer, StackedTrainer,
the command line). CPU autocast supports both types, so all of it runs here. (Your own autocast: test_precision.py.)"""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from paretorch import ParetorchError, lowrank
from paretorch.objectives import MGDA
from paretorch.preferences import Dirichlet
from paretorch.training import ParetoLoss, StackedTrainer, TrainConfig


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 16)
        self.heads = nn.ModuleList([nn.Linear(16, 3), nn.Linear(16, 1)])

    def forward(self, x):
        hidden = torch.relu(self.body(x))
        return [self.heads[0](hidden), self.heads[1](hidden).squeeze(-1)]


LOSSES = [nn.functional.cross_entropy, nn.functional.mse_loss]


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(32, 6, generator=generator), [torch.randint(0, 3, (32,), generator=generator),
                                                     torch.randn(32, generator=generator)]


def _step(precision: str, **options):
    torch.manual_seed(0)
    pm = lowrank(TwoHeads(), num_tasks=2, rank=2)
    seen = []
    pm.model.body.register_forward_hook(lambda _module, _args, out: seen.append(out.dtype))
    loss = ParetoLoss(pm, LOSSES, Dirichlet(2, m=3), seed=0, precision=precision, **options)
    loss._shared_parameters(_batch()[0])  # balancing's one-off probe of the shared parameters (a float32 forward)
    seen.clear()
    out = loss(_batch())
    out.loss.backward()
    return out, seen, {name: p.grad.clone() for name, p in pm.named_parameters() if p.grad is not None}, pm


@pytest.mark.parametrize("balancing", [False, True])
def test_bf16_mixed_runs_the_forward_in_bfloat16_and_the_rest_in_float32(balancing):
    full, full_seen, full_grads, _ = _step("32", gradient_balancing=balancing)
    mixed, mixed_seen, mixed_grads, pm = _step("bf16-mixed", gradient_balancing=balancing)
    assert set(full_seen) == {torch.float32} and set(mixed_seen) == {torch.bfloat16}
    # What the objective, the regularisers and the optimiser see stays float32: losses, loss and gradients.
    assert mixed.losses.dtype == mixed.loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in pm.parameters())
    assert set(mixed_grads) == set(full_grads) and all(g.dtype == torch.float32 for g in mixed_grads.values())
    # bfloat16 keeps about 3 significant digits: the same step, to that precision.
    assert torch.allclose(mixed.losses, full.losses, rtol=3e-2, atol=3e-2)
    flat = lambda grads: torch.cat([grads[name].flatten() for name in sorted(grads)])  # noqa: E731
    assert torch.cosine_similarity(flat(mixed_grads), flat(full_grads), dim=0) > 0.99
    assert not torch.equal(mixed.losses, full.losses), "autocast had no effect"


def test_float16_is_refused_where_the_loss_takes_task_gradients_and_unknown_names_are_refused():
    pm = lowrank(TwoHeads(), num_tasks=2, rank=1)
    with pytest.raises(ParetorchError, match=r"gradient balancing needs .*use precision='bf16-mixed'"):
        ParetoLoss(pm, LOSSES, Dirichlet(2, m=2), gradient_balancing=True, precision="16-mixed")
    with pytest.raises(ParetorchError, match="the objective MGDA needs"):
        ParetoLoss(pm, LOSSES, Dirichlet(2, m=1), MGDA(), precision="16-mixed")
    with pytest.raises(ParetorchError, match="unknown precision 'fp8'; use one of '32', 'bf16-mixed', '16-mixed'"):
        ParetoLoss(pm, LOSSES, Dirichlet(2, m=1), precision="fp8")
    # Linear scalarisation takes no task gradients: float16 is allowed there.
    ParetoLoss(pm, LOSSES, Dirichlet(2, m=2), precision="16-mixed")
    with pytest.raises(ParetorchError, match="the objective MGDA needs"):
        StackedTrainer([TwoHeads(), TwoHeads()], LOSSES, [MGDA(), MGDA()], TrainConfig(precision="16-mixed"))


def test_stacked_training_under_bf16_mixed_matches_float32_to_its_precision():
    torch.manual_seed(0)
    models = [TwoHeads(), TwoHeads()]
    batches = [_batch()]
    trained = {}
    for precision in ("32", "bf16-mixed"):
        config = TrainConfig(epochs=1, lr=1e-2, objective_parameters="all", precision=precision)
        trainer = StackedTrainer(models, LOSSES, [MGDA(), MGDA()], config)
        losses = trainer.training_step(batches[0])
        assert losses.dtype == torch.float32
        trained[precision] = losses
    assert torch.allclose(trained["32"], trained["bf16-mixed"], rtol=3e-2, atol=3e-2)
    assert not torch.equal(trained["32"], trained["bf16-mixed"])


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_a_mixed_precision_run_resumes_exactly_through_the_command_line(precision, whole_and_resumed):
    # The float16 run's loss scale is part of its state: a run stopped after epoch 1 and resumed by the command
    # line ends with the tensors and the scale of one uninterrupted run.
    settings = ["method=lorpman", "freeze_fraction=0.5", f"precision={precision}", "dataset=multimnist",
                "train_size=128", "val_size=32", "test_size=32", "batch_size=32", "--quiet"]
    expected, got, resumed = whole_and_resumed(settings)
    assert set(expected["model"]) == set(got["model"])
    assert all(torch.equal(expected["model"][name], got["model"][name]) for name in expected["model"])
    assert expected["scaler"] == got["scaler"]
    if precision == "16-mixed":
        assert isinstance(got["scaler"]["scale"], float) and got["scaler"]["_growth_tracker"] > 0
    else:
        assert got["scaler"] is None
    assert json.loads((resumed / "config.json").read_text())["precision"] == precision
    records = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records] == [1, 2]


def test_the_command_line_refuses_float16_with_gradient_balancing_in_one_line_before_writing(tmp_path):
    done = subprocess.run([sys.executable, "-m", "paretorch", "train", str(tmp_path / "run"), "method=pamal",
                           "precision=16-mixed", "gradient_balancing=true", "train_size=64", "epochs=1"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "" and not (tmp_path / "run").exists()
    assert done.stderr.count("\n") == 1, done.stderr
    assert "use precision='bf16-mixed' or gradient_balancing=false" in done.stderr, done.stderr
