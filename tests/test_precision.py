"""Mixed precision and float64: every parameterisation and every method preset trains under CPU bf16 autocast,
and works end to end in float64 (forward, at(), a training step)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import paretorch
from paretorch import ParetoLoss, build_method
from paretorch.methods import method_names
from paretorch.preferences import Dirichlet


class ConvNet(nn.Module):
    """Conv (unpadded, so COSMOS folds exactly), BatchNorm, LayerNorm and two classification heads."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(4, 8), nn.LayerNorm(8))
        self.heads = nn.ModuleList([nn.Linear(8, 3), nn.Linear(8, 3)])

    def forward(self, x):
        z = self.encoder(x)
        return [head(z) for head in self.heads]


WRAPPERS = {
    "lowrank": lambda net: paretorch.lowrank(net, 2, rank=2),
    "ensemble": lambda net: paretorch.ensemble(net, 2, batchnorm="members"),
    "film": lambda net: paretorch.film(net, 2),
    "conditioned": lambda net: paretorch.conditioned(net, 2),
    "hypernetwork": lambda net: paretorch.hypernetwork(net, 2, hidden=8),
    "residual hypernetwork": lambda net: paretorch.hypernetwork(net, 2, hidden=8, residual=True),
    "plain": lambda net: paretorch.plain(net, 2),
}


def _batch(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 8, 8, generator=generator, dtype=dtype)
    return x, [torch.randint(0, 3, (8,), generator=generator), torch.randint(0, 3, (8,), generator=generator)]


def _step(pm, batch, autocast):
    loss = ParetoLoss(pm, [F.cross_entropy] * 2, Dirichlet(2, m=3, generator=torch.Generator().manual_seed(0)))
    optimizer = torch.optim.SGD(pm.parameters(), lr=0.1)
    before = [p.detach().clone() for p in pm.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = loss(batch)
    out.loss.backward()
    grads = [p.grad for p in pm.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, pm.parameters(), strict=True))
    return out


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_bf16_autocast_trains_and_matches_float32(name):
    torch.manual_seed(0)
    pm = WRAPPERS[name](ConvNet())
    reference = ParetoLoss(pm, [F.cross_entropy] * 2, Dirichlet(2, m=3, generator=torch.Generator().manual_seed(0)))
    expected = reference(_batch()).losses
    out = _step(pm, _batch(), autocast=True)
    torch.testing.assert_close(out.losses.float(), expected, rtol=5e-2, atol=5e-2)
    pm.eval()
    prefs = torch.tensor([[0.3, 0.7]] * 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        steered, plain = pm(_batch()[0], prefs), pm.at([0.3, 0.7]).eval()(_batch()[0])
    for a, b in zip(steered, plain, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_float64_models_stay_float64(name):
    torch.manual_seed(0)
    pm = WRAPPERS[name](ConvNet().double())
    x = _batch(torch.float64)[0]
    pm.eval()
    outputs = pm(x, torch.tensor([0.3, 0.7]))
    assert all(out.dtype == torch.float64 for out in outputs)
    for a, b in zip(outputs, pm.at([0.3, 0.7]).eval()(x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    pm.train()
    _step(pm, _batch(torch.float64), autocast=False)


@pytest.mark.parametrize("method", method_names())
def test_every_preset_takes_a_bf16_autocast_step(method):
    torch.manual_seed(0)
    options = {"m": 1} if method == "cpmtl" else {}
    setup = build_method(method, ConvNet(), 2, **options)
    loss = setup.loss([F.cross_entropy] * 2, total_steps=10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(_batch())
    out.loss.backward()
    assert torch.isfinite(out.loss)
