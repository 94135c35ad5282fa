import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paretorch import ParetorchError
from paretorch.methods import build_method
from paretorch.models import CensusMLP, MultiLeNet
from paretorch.parameterisations import ParetoLayer, conditioned, film
from paretorch.training import CosineAlignment, StepOutputs


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
    assert not any(isinstance(m, ParetoLayer) for m in plain.modules())
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
    assert [repr(r) for r in setup.regularisers] == ["CosineAlignment(1)"]
    assert setup.pm.layer_names == ["encoder.0"]


def test_cosine_term_inverse_target_is_epos_ray_on_which_every_weighted_loss_is_equal():
    torch.manual_seed(0)
    prefs = torch.distributions.Dirichlet(torch.full((5,), 0.7)).sample((8,))
    term = CosineAlignment(2.0, target="inverse")
    ray = term.ray(prefs)
    weighted = prefs * ray  # λ_t·d_t: the same for every task of a row
    torch.testing.assert_close(weighted, weighted[:, :1].expand_as(weighted))
    assert torch.all(ray > 0) and torch.all(ray <= 1)
    # Two tasks: the preference reversed; a zero weight: that task's axis, finite.
    pair = torch.tensor([[0.8, 0.2], [1.0, 0.0]])
    torch.testing.assert_close(term.ray(pair), torch.tensor([[0.25, 1.0], [0.0, 1.0]]))
    # The term is smallest where the losses lie on the ray: a large weight asks for a small loss.
    on_ray = StepOutputs(prefs=pair[:1], losses=torch.tensor([[0.1, 0.4]]))
    off_ray = StepOutputs(prefs=pair[:1], losses=torch.tensor([[0.4, 0.1]]))
    assert term(on_ray) == pytest.approx(-2.0) and term(off_ray) > term(on_ray)
    own = CosineAlignment(2.0)  # COSMOS's own ray is λ: the opposite loss vector is the aligned one
    assert own(off_ray) == pytest.approx(-2.0) and own(on_ray) > own(off_ray)
    with pytest.raises(ParetorchError, match="'preference' or 'inverse'"):
        CosineAlignment(1.0, target="epo")


def test_cosmos_preset_takes_the_cosine_target_and_refuses_it_without_a_cosine_term():
    setup = build_method("cosmos", CensusMLP(12), 2, cosine_target="inverse")
    assert [repr(r) for r in setup.regularisers] == ["CosineAlignment(1, target='inverse')"]
    with pytest.raises(ParetorchError, match=r"cosine_target.*cosine_coef > 0"):
        build_method("cosmos", CensusMLP(12), 2, cosine_target="inverse", cosine_coef=0)


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                     nn.Conv2d(6, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 3)])

    def forward(self, x):
        h = self.encoder(x)
        return [head(h) for head in self.heads]


def _randomise_film(pm):
    with torch.no_grad():  # Γ = B = 0 at the start; make the modulation visible
        for param in pm.adapter_parameters():
            param.copy_(0.3 * torch.randn_like(param))


@pytest.mark.parametrize(("model", "shape", "kind"),
                         [(CensusMLP(12), (12,), nn.Linear), (MultiLeNet(), (1, 28, 28), (nn.Linear, nn.Conv2d)),
                          (BatchNormNet(), (3, 8, 8), nn.BatchNorm2d)],
                         ids=["mlp", "lenet", "batchnorm"])
def test_film_per_sample_equals_loop_and_at_folds_exactly(model, shape, kind):
    torch.manual_seed(0)
    model.eval()  # BatchNorm in eval mode: the folded plain model must equal the conditioned one
    pm = film(model, 2)
    _randomise_film(pm)
    assert all(isinstance(layer.base, kind) for layer in pm.pareto_layers().values())
    x = torch.randn(4, *shape)
    prefs = torch.distributions.Dirichlet(torch.ones(2)).sample((4,))
    outputs = pm(x, prefs)
    for row in range(4):
        for a, b in zip(outputs, pm(x[row : row + 1], prefs[row]), strict=True):
            torch.testing.assert_close(a[row : row + 1], b, atol=1e-5, rtol=1e-4)
    plain = pm.at(prefs[0])
    assert not any(isinstance(m, ParetoLayer) for m in plain.modules())
    assert set(plain.state_dict()) <= set(model.state_dict()) | {k for k in plain.state_dict() if k.endswith("bias")}
    for a, b in zip(plain(x[:2]), pm(x[:2], prefs[0]), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_film_is_feature_wise_scale_and_shift():
    torch.manual_seed(0)
    pm = film(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)), 2)
    _randomise_film(pm)
    layer = pm.model[0]
    x, pref = torch.randn(2, 1, 5, 5), torch.tensor([0.4, 0.6])
    gamma = 1 + layer.scale_weight @ pref
    beta = layer.shift_weight @ pref
    expected = layer.base(x) * gamma.view(1, 3, 1, 1) + beta.view(1, 3, 1, 1)
    torch.testing.assert_close(pm(x, pref), expected)
    assert pm.parameter_report().added_total == 2 * 3 * 2


def test_film_rejects_unsupported_targets():
    with pytest.raises(ParetorchError, match="LayerNorm, which film does not support"):
        film(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4)), 2, targets=["1"])


def test_cosmos_film_option_builds_film_layers():
    setup = build_method("cosmos", CensusMLP(12), 2, conditioning="film")
    assert setup.pm.method == "film" and [repr(r) for r in setup.regularisers] == ["CosineAlignment(1)"]
    with pytest.raises(ParetorchError, match="conditioning"):
        build_method("cosmos", CensusMLP(12), 2, conditioning="tiles")
