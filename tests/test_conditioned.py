import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paretorch import ParetorchError
from paretorch.methods import build_method
from paretorch.models import CensusMLP, MultiLeNet
from paretorch.parameterisations import PARETO_LAYER_TYPES, conditioned


@pytest.mark.parametrize(("model", "shape"), [(CensusMLP(12), (12,)), (MultiLeNet(), (1, 28, 28))],
                         ids=["mlp", "lenet"])
def test_per_sample_equals_loop_and_at_equals_forward(model, shape):
    pm = conditioned(model, 2)
    x = torch.randn(5, *shape)
    prefs = torch.distributions.Dirichlet(torch.ones(2)).sample((5,))
    outputs = pm(x, prefs)
    for row in range(5):
        single = pm(x[row : row + 1], prefs[row])
        for a, b in zip(outputs, single, strict=True):
            torch.testing.assert_close(a[row : row + 1], b, atol=1e-5, rtol=1e-4)
    plain = pm.at(prefs[0])
    assert not any(isinstance(m, PARETO_LAYER_TYPES) for m in plain.modules())
    for a, b in zip(plain(x[:1]), pm(x[:1], prefs[0]), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_linear_conditioning_is_concatenation():
    torch.manual_seed(0)
    pm = conditioned(nn.Sequential(nn.Linear(3, 4)), 2)
    layer = pm.model[0]
    x, pref = torch.randn(2, 3), torch.tensor([0.25, 0.75])
    concatenated = F.linear(torch.cat([x, pref.expand(2, 2)], dim=1),
                            torch.cat([layer.base.weight, layer.pref_weight], dim=1), layer.base.bias)
    torch.testing.assert_close(pm(x, pref), concatenated)


def test_conv_conditioning_is_constant_channels_even_with_padding():
    torch.manual_seed(0)
    pm = conditioned(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)), 2)
    layer = pm.model[0]
    x, pref = torch.randn(2, 1, 5, 5), torch.tensor([0.4, 0.6])
    channels = torch.cat([x, pref.view(1, 2, 1, 1).expand(2, 2, 5, 5)], dim=1)
    expected = F.conv2d(channels, torch.cat([layer.base.weight, layer.pref_weight], dim=1), layer.base.bias,
                        padding=1)
    torch.testing.assert_close(pm(x, pref), expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ParetorchError, match="cannot fold the preference"):
        pm.at(pref)


def test_cosmos_preset_has_cosine_term():
    setup = build_method("cosmos", CensusMLP(12), 2)
    assert setup.config.cosine_coef == 1.0
    assert setup.pm.layer_names == ["encoder.0"]
