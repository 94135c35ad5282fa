"""Pareto MTL's K subproblems trained together (vmap over stacked weights) equal K separate runs."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from paretorch import ParetorchError, plain
from paretorch.objectives import MGDA, ParetoMTL
from paretorch.preferences import Fixed, unit_vectors
from paretorch.training import StackedTrainer, TrainConfig, Trainer


class TwoTaskNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 12), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(12, 1), nn.Linear(12, 1)])

    def forward(self, x):
        z = self.encoder(x)
        return [head(z).squeeze(-1) for head in self.heads]


def mse(output, target):
    return F.mse_loss(output, target)


def data():
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
    directions = torch.randn(2, 6, generator=torch.Generator().manual_seed(1))
    return DataLoader(TensorDataset(x, torch.tanh(x @ directions.T)), batch_size=16)


@pytest.mark.parametrize("parameters", ["all", "shared"])
def test_stacked_pareto_mtl_equals_separate_runs(parameters):
    refs = unit_vectors(2, 3)
    torch.manual_seed(0)
    models = [TwoTaskNet() for _ in range(3)]
    config = TrainConfig(epochs=3, lr=0.1, optimizer="sgd", momentum=0.5, objective_parameters=parameters)
    stacked = StackedTrainer([copy.deepcopy(m) for m in models], [mse, mse],
                             [ParetoMTL(refs, k, init_steps=4) for k in range(3)], config).fit(data())
    for k, model in enumerate(models):
        pm = plain(copy.deepcopy(model), 2)
        Trainer(pm, [mse, mse], Fixed([[0.5, 0.5]]), config, objective=ParetoMTL(refs, k, init_steps=4)).fit(data())
        for name, value in pm.model.state_dict().items():
            torch.testing.assert_close(stacked[k].state_dict()[name], value, atol=1e-5, rtol=1e-4)
    # The subproblems did pull the models apart.
    assert not torch.allclose(stacked[0].heads[0].weight, stacked[2].heads[0].weight, atol=1e-3)


def test_stacked_trainer_rejects_batchnorm_and_mismatched_objectives():
    with pytest.raises(ParetorchError, match="BatchNorm"):
        StackedTrainer([nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))], [mse, mse], [MGDA()])
    with pytest.raises(ParetorchError, match="one objective per model"):
        StackedTrainer([TwoTaskNet(), TwoTaskNet()], [mse, mse], [MGDA()])
